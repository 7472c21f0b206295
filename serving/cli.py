"""The `tierserve` command: prepare models, run the stack, check configs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from serving.admin_client import admin_request
from serving.config import ConfigError, RayConfig, StackConfig, admin_key, load_config
from serving.ingress import drain_haproxy, ingress_environment
from serving.scale_driver import ScaleDriver, scaled
from serving.status import APP_NAME

# The stack's own commands; commands.main assembles them with the other packages' into `tierserve`.
app = typer.Typer(help="tierserve: tiered, cached, routed LLM serving on vLLM + Ray Serve.", no_args_is_help=True)
models_app = typer.Typer(help="Prepare the embedded models.", no_args_is_help=True)
config_app = typer.Typer(help="Validate configuration files.", no_args_is_help=True)
app.add_typer(models_app, name="models")
cache_app = typer.Typer(help="Operate the semantic cache of a running stack (admin API).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(cache_app, name="cache")

console = Console(stderr=True)
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Stack config YAML.")]
DEFAULT_CONFIG = Path("configs/default.yaml")


def _load(path: Path) -> StackConfig:
    try:
        return load_config(path)
    except ConfigError as error:
        console.print(Text(f"{error}", style="red"), soft_wrap=True)
        raise typer.Exit(2) from None


def _prepare(config: StackConfig, force: bool = False) -> None:
    wanted = [t.prepared for t in config.tiers if t.prepared is not None]
    if not wanted:
        return
    from serving.models import ModelPrepError, is_prepared, prepare_model

    todo = [name for name in dict.fromkeys(wanted) if force or not is_prepared(name, config.models_dir / name)]
    if not todo:
        return
    with Progress(
        TextColumn("[bold]{task.fields[model]}[/bold]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for name in todo:
            task = progress.add_task("starting", total=1.0, model=name)

            def report(stage: str, fraction: float, task_id: TaskID = task) -> None:
                progress.update(task_id, description=stage, completed=fraction)

            try:
                prepare_model(name, config.models_dir / name, progress=report, force=force)
            except ModelPrepError as error:
                console.print(Text(f"cannot prepare {name}: {error}", style="red"), soft_wrap=True)
                raise typer.Exit(1) from None
            progress.update(task, completed=1.0, description="ready")


@models_app.command("prepare")
def models_prepare(
    config: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option(help="Rebuild even when already prepared.")] = False,
) -> None:
    """Build every `prepared:` model of the config into models_dir (once; reused afterwards)."""
    stack = _load(config)
    _prepare(stack, force=force)
    for tier in stack.tiers:
        console.print(f"{tier.name}: {stack.model_path(tier)}")


@config_app.command("check")
def config_check(config: Annotated[Path, typer.Argument(help="Stack config YAML.")]) -> None:
    """Validate a config file; the error names the bad field."""
    stack = _load(config)
    console.print(
        f"[green]{config}: valid[/green] ({len(stack.tiers)} tiers: {', '.join(t.name for t in stack.tiers)})"
    )


@config_app.command("reference")
def config_reference() -> None:
    """Print every config field, its type, default and description as Markdown (docs/configuration.md)."""
    from serving.config import reference_markdown

    typer.echo(reference_markdown())


UrlOption = Annotated[str, typer.Option("--url", help="The running stack.")]
AdminKeyOption = Annotated[
    str, typer.Option("--admin-key", envvar="TIERSERVE_ADMIN_KEY", help="The admin key (TIERSERVE_ADMIN_KEY).")
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="One tenant (default: all).")]


def _admin(
    method: str, url: str, key: str, path: str, *, json_body: object = None, params: dict[str, str] | None = None
) -> httpx.Response:
    return admin_request(method, url, key, path, timeout_s=120, json=json_body, params=params)


@cache_app.command("stats")
def cache_stats(url: UrlOption = "http://127.0.0.1:8000", admin_key: AdminKeyOption = "") -> None:
    """Entries per tenant in Redis and in this gateway replica's index, hit/miss counters."""
    typer.echo(json.dumps(_admin("GET", url, admin_key, "/admin/cache/stats").json(), indent=2))


@cache_app.command("invalidate")
def cache_invalidate(
    url: UrlOption = "http://127.0.0.1:8000",
    admin_key: AdminKeyOption = "",
    tenant: TenantOption = None,
    model: Annotated[str | None, typer.Option(help="Only answers made for this model alias.")] = None,
) -> None:
    """Delete cached answers: one tenant's, one model's, or everything."""
    body = {"tenant": tenant, "model": model}
    typer.echo(json.dumps(_admin("POST", url, admin_key, "/admin/cache/invalidate", json_body=body).json()))


@cache_app.command("export")
def cache_export(
    url: UrlOption = "http://127.0.0.1:8000", admin_key: AdminKeyOption = "", tenant: TenantOption = None
) -> None:
    """Every cached answer as JSON lines (question, answer, model, version, tenant, time)."""
    params = {"tenant": tenant} if tenant else {}
    sys.stdout.write(_admin("GET", url, admin_key, "/admin/cache/export", params=params).text)


def _wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=30)
            if response.status_code == 200:
                return
            last = response.text[:300]
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(1)
    raise TimeoutError(f"stack not healthy after {timeout_s:.0f}s: {last}")


def _ray_address(stack: StackConfig, address: str) -> RayConfig:
    """The config's Ray section with `--address`, validated as the YAML's would be."""
    try:
        return RayConfig.model_validate({**stack.ray.model_dump(), "address": address})
    except ValidationError as error:
        raise ConfigError(f"--address: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None


@app.command()
def serve(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str | None, typer.Option(help="Override gateway.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override gateway.port.")] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Run on an existing Ray cluster, from one of its nodes (overrides ray.address): `auto` for the one "
            "`ray start` began on this node, or host:6379 for its GCS."
        ),
    ] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for /health.")] = 600.0,
) -> None:
    """Run the whole stack (Redis, Ray, Serve: gateway + one deployment per tier) until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack = _load(config)
    if host or port:
        gateway = stack.gateway.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
        stack = stack.model_copy(update={"gateway": gateway})
    try:
        if address:
            stack = stack.model_copy(update={"ray": _ray_address(stack, address)})
        admin_key(stack.gateway)  # read here too: a bad key is a clear error now, not a failed gateway minutes later
    except ConfigError as error:
        console.print(Text(f"{error}", style="red"), soft_wrap=True)
        raise typer.Exit(2) from None
    _prepare(stack)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray

    started = time.perf_counter()
    with ingress_environment(stack.gateway):
        if stack.ray.address is not None and stack.gateway.ingress == "haproxy":
            console.print("[yellow]joined a running Ray cluster: it keeps the ingress settings it was started with[/]")
        # A cluster's CPUs are its nodes' (`ray start --num-cpus`): Ray refuses num_cpus when joining one.
        cpus = stack.ray.num_cpus if stack.ray.address is None else None
        ray.init(address=stack.ray.address, num_cpus=cpus, include_dashboard=False, log_to_driver=True)
        _serve_until_stopped(stack, config, ready_timeout, started)


@app.command()
def reload(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Ask the stack started with this config to deploy it again (after you edited it): a rolling update of the
    deployments that changed, with requests in flight finishing. Same as `kill -HUP <pid of tierserve serve>`."""
    stack = _load(config)
    pid_file = stack.data_dir / "tierserve.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as error:
        console.print(f"[red]no running stack for {config} ({pid_file}: {error})[/]")
        raise typer.Exit(1) from None
    console.print(f"asked tierserve (pid {pid}) to reload {config}; it prints the outcome")


def _drain(stack: StackConfig) -> None:
    """Let requests in flight finish before Serve stops (it stops the ingress first, which would cut them)."""
    socket_path = os.environ.get("RAY_SERVE_HAPROXY_SOCKET_PATH")
    if stack.gateway.ingress != "haproxy" or not socket_path or stack.gateway.shutdown_drain_s <= 0:
        return
    started = time.monotonic()
    left = drain_haproxy(Path(socket_path), stack.gateway.shutdown_drain_s)
    waited = time.monotonic() - started
    if left:
        console.print(f"[yellow]{left} requests still in flight after {waited:.0f}s (gateway.shutdown_drain_s)[/]")
    elif waited >= 1:
        console.print(f"requests in flight finished ({waited:.0f}s)")


class _ReloadRequest:
    """SIGHUP asks the running stack to read its config again (`tierserve reload` sends it, to the pid in the
    data directory's tierserve.pid)."""

    def __init__(self, pid_file: Path) -> None:
        self._asked = threading.Event()
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
        signal.signal(signal.SIGHUP, self._ask)

    def _ask(self, *_: object) -> None:
        self._asked.set()

    def wait(self, timeout_s: float) -> bool:
        """Sleeps until a reload request or `timeout_s`; True when one came (each is answered once)."""
        asked = self._asked.wait(timeout_s)
        self._asked.clear()
        return asked


def _reload(
    current: StackConfig, path: Path, url: str, ready_timeout: float, driver: ScaleDriver | None = None
) -> StackConfig:
    """Deploy the config file again: Ray Serve rolls only the deployments whose options or arguments changed,
    starting new replicas before it drains the old ones, so requests in flight finish and new ones keep being
    answered. A config that does not load keeps the running stack as it is."""
    from ray import serve as ray_serve

    from serving.app import build_app

    try:
        stack = load_config(path)
    except ConfigError as error:
        console.print(Text(f"reload refused, the stack keeps running as it was: {error}", style="red"), soft_wrap=True)
        return current
    # Where the stack listens and the Ray cluster it runs on were fixed at start.
    kept = {name: getattr(current.gateway, name) for name in ("host", "port", "ingress")}
    changed = [f"gateway.{name}" for name, value in kept.items() if getattr(stack.gateway, name) != value]
    changed += ["ray"] if stack.ray != current.ray else []
    if changed:
        console.print(f"[yellow]{', '.join(changed)} change only on a restart: kept as they were[/]")
    stack = stack.model_copy(update={"gateway": stack.gateway.model_copy(update=kept), "ray": current.ray})
    started = time.perf_counter()
    console.print(f"reloading {path} ...")
    try:
        _prepare(stack)  # a tier the edit added may need its model prepared
        live = scaled(stack, driver.overrides()) if driver is not None else {}
        if live:
            console.print(f"[yellow]kept the live scale of {', '.join(live)} (tierserve scale TIER --reset)[/]")
        ray_serve.run(build_app(stack, live), name=APP_NAME, route_prefix="/", blocking=False)
        _wait_healthy(url, ready_timeout)
    except Exception as error:  # a reload that fails must not stop the stack that is serving
        console.print(Text(f"reload failed, the stack keeps running: {error}", style="red"), soft_wrap=True)
        return stack
    console.print(f"[bold green]reloaded[/] in {time.perf_counter() - started:.0f}s")
    return stack


def _serve_until_stopped(stack: StackConfig, config_path: Path, ready_timeout: float, started: float) -> None:
    import ray
    from ray import serve as ray_serve

    from serving.app import build_app

    # SIGTERM (systemd, make) gets the same clean shutdown as Ctrl-C. SIGINT is set explicitly: a shell starts
    # background jobs (`tierserve serve &` in a script) with SIGINT ignored, and Python keeps it ignored.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    url = f"http://{stack.gateway.host}:{stack.gateway.port}"
    pid_file = stack.data_dir / "tierserve.pid"
    driver: ScaleDriver | None = None
    try:
        ray_serve.start(
            proxy_location=stack.gateway.proxy_location,
            http_options={"host": stack.gateway.host, "port": stack.gateway.port},
        )
        ray_serve.run(build_app(stack), name=APP_NAME, route_prefix="/", blocking=False)
        _wait_healthy(url, ready_timeout)
        reload = _ReloadRequest(pid_file)
        elapsed = time.perf_counter() - started
        console.print(f"\n[bold green]tierserve is ready[/bold green] in {elapsed:.0f}s at [bold]{url}/v1[/bold]")
        console.print(
            f"models: auto, {', '.join(t.name for t in stack.tiers)}   health: {url}/health   metrics: {url}/metrics\n",
            soft_wrap=True,
        )
        key = next(iter(stack.gateway.api_keys), "not-needed")
        console.print(
            "Try it:\n"
            f"  curl {url}/v1/chat/completions -H 'Content-Type: application/json' "
            f"-H 'Authorization: Bearer {key}' \\\n"
            '    -d \'{"model": "auto", "messages": [{"role": "user", "content": "Hello!"}]}\'\n\n'
            "  from openai import OpenAI\n"
            f'  client = OpenAI(base_url="{url}/v1", api_key="{key}")\n'
            '  print(client.chat.completions.create(model="auto", '
            'messages=[{"role": "user", "content": "Hello!"}]).choices[0].message.content)\n\n'
            "Ctrl-C stops everything.",
            # Never hard-wrapped (a wrapped quoted string breaks copy-paste), and brackets are not markup.
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        driver = ScaleDriver.connect(stack, ready_timeout)
        if driver is not None:
            driver.forget()  # a new start: the config file decides the scale again
        while True:
            if reload.wait(1.0):
                stack = _reload(stack, config_path, url, ready_timeout, driver)
            if driver is not None:
                driver.poll(stack)
    except KeyboardInterrupt:
        console.print("\nstopping tierserve ...")
    except TimeoutError as error:
        console.print(Text(f"{error}", style="red"), soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        pid_file.unlink(missing_ok=True)
        if driver is not None:
            driver.close()
        _drain(stack)
        try:
            ray_serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()
        console.print("stopped.")


def first_api_key(path: Path) -> str:
    """A key the stack of this config accepts ("" when it is open): for commands that start it and call it."""
    try:
        return next(iter(load_config(path).gateway.api_keys), "")
    except ConfigError:
        return ""
