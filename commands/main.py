"""`tierserve`: the stack's commands (serve, models, config, cache) with the cache's, the router's and the load-test
gate's, each registered here with what it needs from the others passed in."""

from __future__ import annotations

from cache.cli import add_eval_command
from commands.audit import build_audit_app
from commands.drift import build_drift_app
from commands.guards import build_guards_app
from commands.keys import build_cost_app, build_keys_app
from commands.kuberay import add_kuberay_command
from commands.plan import add_plan_command
from commands.prompts import build_prompts_app
from commands.requests import build_requests_app
from commands.router import build_router_app
from commands.scale import add_scale_command
from commands.status import add_status_command
from evals.cli import add_eval_command as add_golden_eval_command
from loadtest.chaos import add_chaos_command
from loadtest.cli import add_loadtest_command
from serving.cli import app, cache_app, first_api_key

add_eval_command(cache_app)  # tierserve cache eval --pairs FILE.jsonl
add_loadtest_command(app, first_api_key)  # tierserve loadtest --scenario NAME (Locust runs in its own process)
add_golden_eval_command(app)  # tierserve eval --set FILE (a golden set through a running stack, scored)
add_chaos_command(app)  # tierserve chaos --scenario NAME (load a running stack, kill one of its processes)
app.add_typer(build_router_app(), name="router")  # tierserve router train|eval|calibrate|explain
app.add_typer(build_keys_app(), name="keys")  # tierserve keys create|list|show|update|revoke|rotate
app.add_typer(build_cost_app(), name="cost")  # tierserve cost report
app.add_typer(build_audit_app(), name="audit")  # tierserve audit verify|export|tail
app.add_typer(build_prompts_app(), name="prompts")  # tierserve prompts create|list|show|diff|approve
app.add_typer(build_guards_app(), name="guards")  # tierserve guards train|check
app.add_typer(build_requests_app(), name="requests")  # tierserve requests show ID | tail
app.add_typer(build_drift_app(), name="drift")  # tierserve drift report
add_scale_command(app)  # tierserve scale TIER N | --min A --max B | --reset (a running stack, in place)
add_status_command(app)  # tierserve status [--json] [--watch N]
add_plan_command(app)  # tierserve plan --rps R [--mix FILE] [--slo-file F] [--json] (capacity planning)
add_kuberay_command(app)  # tierserve kuberay --config configs/gpu.yaml [--out FILE] (a KubeRay RayService)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
