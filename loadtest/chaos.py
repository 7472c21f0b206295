"""`tierserve chaos`: Locust load on a running stack while one of its processes is killed by pid, then a reckoning.

Each run reconciles sent = answered + failed (by kind), says which answers were lost after the client had been told
200 (a stream cut mid-answer), and when /health named the fault and when it was green again. The stack must run on
this machine (the processes are found by their Ray titles: `ServeReplica:<app>:<deployment>`).

Scenarios: tier-replica (a tier's replica), engine-core (the vLLM EngineCore process under it), gateway (a gateway
replica), redis (the stack's redis-server), redis-primary (the primary of a replicated Redis that Sentinels watch:
the run shows the failover as clients see it), controller (Ray Serve's controller).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import psutil
import typer
from rich.console import Console
from rich.table import Table

from loadtest.records import RequestRecord
from loadtest.runner import LoadPlan, LoadtestError, check_endpoint, parse_duration, run_locust, write_json

SCENARIOS = ("tier-replica", "engine-core", "gateway", "redis", "redis-primary", "controller")


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return ""


def find_target(scenario: str, tier: str, within: int | None = None, redis_port: int | None = None) -> psutil.Process:
    """The process the scenario kills, found by its Ray title on this machine (among the descendants of `within`,
    the stack's `tierserve serve` process, when given: two stacks on one machine have the same titles)."""
    if within is None:
        procs = list(psutil.process_iter())
    else:
        try:
            procs = psutil.Process(within).children(recursive=True)
        except psutil.Error:
            raise LoadtestError(f"no process {within} on this machine (--within)") from None
    titles = {proc.pid: _cmdline(proc) for proc in procs}

    def titled(fragment: str) -> list[psutil.Process]:
        return [proc for proc in procs if fragment in titles.get(proc.pid, "")]

    if scenario in ("tier-replica", "engine-core"):
        replicas = titled(f":tier-{tier}")
        replicas = [p for p in replicas if "ServeReplica" in titles[p.pid]]
        if not replicas:
            raise LoadtestError(f"no replica of tier '{tier}' on this machine (is the stack running here?)")
        if scenario == "tier-replica":
            return replicas[0]
        for child in replicas[0].children(recursive=True):
            if "EngineCore" in _cmdline(child) or "EngineCore" in child.name():
                return child
        raise LoadtestError(f"no vLLM EngineCore process under tier '{tier}''s replica {replicas[0].pid}")
    if scenario == "redis-primary":  # an operator's Redis: not a process of the stack's (`within` does not apply)
        return redis_primary(list(psutil.process_iter()), redis_port)
    if scenario == "gateway":
        found = [p for p in titled(":gateway") if "ServeReplica" in titles[p.pid]]
    elif scenario == "controller":
        found = titled("ServeController")
    else:
        found = [p for p in procs if _is_redis_server(p, titles[p.pid])]
        found = [p for p in found if any("ServeReplica" in _cmdline(a) for a in _ancestors(p))] or found
    if not found:
        raise LoadtestError(f"nothing to kill for scenario '{scenario}' on this machine")
    return found[0]


def _is_redis_server(proc: psutil.Process, title: str) -> bool:
    """A Redis data server (not a Sentinel: the same binary, titled `... [sentinel]`)."""
    try:
        named = proc.name() == "redis-server"
    except psutil.Error:  # it exited while we looked
        return False
    return (named or title.startswith("redis-server")) and "sentinel" not in title


def _listening(proc: psutil.Process) -> list[tuple[str, int]]:
    try:
        sockets = proc.net_connections(kind="tcp")
    except psutil.Error:
        return []
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # a server bound everywhere answers on loopback
    return [(wildcard.get(c.laddr.ip, c.laddr.ip), c.laddr.port) for c in sockets if c.status == psutil.CONN_LISTEN]


def redis_primary(procs: list[psutil.Process], port: int | None = None) -> psutil.Process:
    """The redis-server on this machine that is a primary with at least one replica connected (asked over its own
    listening socket: `INFO replication`), or the one on `port`; Sentinels and lone servers (a stack's own Redis)
    are passed over. Two replicated primaries and no port: refused, naming them (killing a guess is not a test)."""
    import redis

    found: list[tuple[psutil.Process, int]] = []
    for proc in procs:
        if not _is_redis_server(proc, _cmdline(proc)):
            continue
        for host, listening in _listening(proc):
            if port is not None and listening != port:
                continue
            client = redis.Redis(host=host, port=listening, socket_timeout=1, socket_connect_timeout=1)
            try:
                info = client.info("replication")
            except redis.RedisError:  # a password, a TLS port: not one this run can judge
                continue
            finally:
                client.close()
            if info.get("role") == "master" and int(info.get("connected_slaves", 0)) > 0:
                found.append((proc, listening))
                break
    if len(found) > 1:
        ports = ", ".join(str(listening) for _, listening in found)
        raise LoadtestError(f"Redis primaries with replicas on ports {ports}: say which with --redis-port")
    if not found:
        where = f" on port {port}" if port is not None else ""
        raise LoadtestError(f"no Redis primary with a connected replica{where} on this machine (is Sentinel set up?)")
    return found[0][0]


def _ancestors(proc: psutil.Process) -> list[psutil.Process]:
    try:
        parents: list[psutil.Process] = proc.parents()
    except psutil.Error:
        return []
    return parents


@dataclass
class HealthWatch:
    """/health once a second from the kill on: when it first went red, and when it was green again after."""

    url: str
    red_at: float | None = None
    green_at: float | None = None
    failing: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self, since: float) -> None:
        # /health probes every tier and may wait its whole health_timeout_s (30 s) on a dead one.
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"{self.url}/health")
                    ok, body = response.status_code == 200, response.json()
                except (httpx.HTTPError, ValueError):
                    ok, body = False, {}
                now = time.monotonic() - since
                if not ok and self.red_at is None:
                    self.red_at = now
                self.failing |= set(body.get("failing") or [])
                if ok and self.red_at is not None and self.green_at is None:
                    self.green_at = now
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()


def reckon(records: list[RequestRecord], killed_at: float) -> dict[str, Any]:
    """sent = answered + failed, failures by kind; lost after acknowledgement = a 200 whose stream broke; and the
    failures among requests sent after the kill (those the stack had every chance to route around)."""
    answered = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    kinds = Counter(
        ("lost after 200" if r.status == 200 else f"{r.status}" if r.status else "no response")
        + (f" {r.error.split(':', 1)[0]}" if r.error and r.status in (0, 200) else "")
        for r in failed
    )
    shed = sum(
        1 for r in failed if r.status in (429, 503) and r.error and ("overloaded" in r.error or "share" in r.error)
    )
    return {
        "sent": len(records),
        "answered": len(answered),
        "failed": len(failed),
        "reconciled": len(records) == len(answered) + len(failed),
        "failed_by_kind": dict(kinds),
        "shed": shed,
        "lost_after_acknowledgement": sum(1 for r in failed if r.status == 200),
        "failed_sent_after_kill": sum(1 for r in failed if r.start >= killed_at),
        "sent_after_kill": sum(1 for r in records if r.start >= killed_at),
        "answered_by_tier": dict(Counter(r.tier for r in answered)),
        "answered_after_client_retries": sum(1 for r in answered if r.attempts > 1),
        "cache_before_kill": dict(Counter(r.cache for r in answered if r.start < killed_at)),
        "cache_after_kill": dict(Counter(r.cache for r in answered if r.start >= killed_at)),
        "cache_resumed_after_kill_s": _cache_resumed(answered, killed_at),
    }


def _cache_resumed(answered: list[RequestRecord], killed_at: float) -> float | None:
    """Seconds from the kill to the first cache hit after the last bypass that followed it (None: no bypass)."""
    after = sorted((r for r in answered if r.start >= killed_at), key=lambda r: r.start)
    bypassed = [i for i, r in enumerate(after) if r.cache == "bypass"]
    if not bypassed:
        return None
    hits = [r for r in after[bypassed[-1] + 1 :] if r.cache == "hit"]
    return round(hits[0].start - killed_at, 1) if hits else None


def add_chaos_command(app: typer.Typer) -> None:
    @app.command("chaos")
    def chaos(
        scenario: Annotated[str, typer.Option("--scenario", "-s", help=f"One of: {', '.join(SCENARIOS)}.")],
        url: Annotated[
            str, typer.Option("--url", help="The running stack (on this machine).")
        ] = "http://127.0.0.1:8000",
        tier: Annotated[str, typer.Option("--tier", help="The tier a tier-replica/engine-core run kills.")] = "large",
        model: Annotated[str, typer.Option("--model", help="What the load asks for (default: the killed tier).")] = "",
        users: Annotated[int, typer.Option("--users", "-u", min=1, help="Concurrent simulated users.")] = 6,
        duration: Annotated[str, typer.Option("--duration", "-t", help="Length of the load: 60s, 2m.")] = "60s",
        kill_at: Annotated[str, typer.Option("--kill-at", help="When into the load the kill comes.")] = "15s",
        client_retries: Annotated[
            int,
            typer.Option(
                "--client-retries",
                min=0,
                help="Retries of a request that got no answer, as the openai client makes them (its default: 2).",
            ),
        ] = 2,
        within: Annotated[
            int | None,
            typer.Option("--within", help="Only kill a descendant of this pid (the stack's `tierserve serve`)."),
        ] = None,
        redis_port: Annotated[
            int | None,
            typer.Option("--redis-port", help="redis-primary: the primary's port, when this machine has several."),
        ] = None,
        api_key: Annotated[str, typer.Option("--api-key", envvar="TIERSERVE_API_KEY", help="Bearer key.")] = "",
        allow_failures: Annotated[
            int, typer.Option("--allow-failures", min=0, help="Failures (not sheds) tolerated before exit 1.")
        ] = 0,
        out_dir: Annotated[Path, typer.Option("--out-dir", help="Records and Locust log.")] = Path(".tierserve/chaos"),
        json_out: Annotated[Path | None, typer.Option("--json-out", help="Write the reckoning here.")] = None,
    ) -> None:
        """Load a running stack, kill one of its processes by pid, and reconcile what every request got."""
        console = Console()
        if scenario not in SCENARIOS:
            raise typer.BadParameter(f"--scenario must be one of {', '.join(SCENARIOS)}")
        try:
            check_endpoint(url, api_key)
            length, kill_after = parse_duration(duration), parse_duration(kill_at)
            target = find_target(scenario, tier, within, redis_port)
        except (LoadtestError, ValueError) as error:
            console.print(f"[red]error: {error}[/red]")
            raise typer.Exit(2) from None
        out_dir.mkdir(parents=True, exist_ok=True)
        plan = LoadPlan(
            # Redis holds the cache: its run asks the repeated questions at temperature 0 that the cache serves.
            scenario="cache" if scenario.startswith("redis") else "chat",
            url=url,
            users=users,
            spawn_rate=float(users),
            duration_s=length,
            records=out_dir / f"{scenario}-records.jsonl",
            log=out_dir / f"{scenario}-locust.log",
            api_key=api_key,
            model=model or (tier if scenario in ("tier-replica", "engine-core") else "auto"),
            max_tokens=32,
            think_time="0.2,1",
            extra=("--client-retries", str(client_retries)),
        )
        result: dict[str, Any] = {"scenario": scenario, "target_pid": target.pid, "target": _cmdline(target)[:200]}
        records: list[RequestRecord] = []
        loader = threading.Thread(target=lambda: records.extend(run_locust(plan)), daemon=True)
        started = time.monotonic()
        loader.start()
        time.sleep(kill_after)
        watch = HealthWatch(url)
        watcher = threading.Thread(target=watch.run, args=(time.monotonic(),), daemon=True)
        watcher.start()
        killed_at = time.time()
        target.send_signal(signal.SIGKILL)
        result["killed_at_s"] = round(time.monotonic() - started, 1)
        loader.join()
        watch.stop()
        watcher.join()
        result |= reckon(records, killed_at)
        result["health"] = {
            "red_after_kill_s": watch.red_at,
            "green_after_kill_s": watch.green_at,
            "failing_tiers_named": sorted(watch.failing),
        }
        table = Table(title=f"chaos: {scenario} (pid {target.pid} killed at {result['killed_at_s']} s)")
        table.add_column("what")
        table.add_column("value", justify="right")
        names: tuple[str, ...] = ("sent", "answered", "answered_after_client_retries", "failed", "shed")
        names += ("lost_after_acknowledgement", "sent_after_kill")
        for name in (*names, "failed_sent_after_kill", "reconciled"):
            table.add_row(name, str(result[name]))
        for kind, count in result["failed_by_kind"].items():
            table.add_row(f"  failed: {kind}", str(count))
        table.add_row("/health red after kill", f"{watch.red_at} s")
        table.add_row("/health green again after kill", f"{watch.green_at} s")
        table.add_row("tiers /health named", ", ".join(sorted(watch.failing)) or "-")
        for phase in ("cache_before_kill", "cache_after_kill"):
            table.add_row(phase.replace("_", " "), ", ".join(f"{k} {v}" for k, v in sorted(result[phase].items())))
        table.add_row("cache hits again after kill", f"{result['cache_resumed_after_kill_s']} s")
        console.print(table)
        if json_out is not None:
            write_json(json_out, result)
        # In-flight streams cut by the kill are reported, not judged: nothing can replay a half-sent answer.
        if result["failed_sent_after_kill"] - result["shed"] > allow_failures:
            raise typer.Exit(1)
