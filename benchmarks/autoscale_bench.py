"""Autoscaling under a step load, on the embedded default (real vLLM tiers in Ray Serve): the small tier autoscales
between 1 and 2 replicas on requests in flight; the load steps from idle to `--users` streaming users and back.
Every 2 s the timeline records the tier's running replicas (from `GET /admin/status`), the users, the engines'
running and waiting requests and the last-minute TTFT p50; every request's outcome is kept (none may fail).

    python -m benchmarks.autoscale_bench [--users 6] [--load-s 120] [--out docs/autoscale-bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.stack import ROOT, served

ADMIN_KEY = "autoscale-bench-admin-key"


def _config(folder: Path, args: argparse.Namespace) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["models_dir"] = str(ROOT / ".tierserve" / "models")
    config["data_dir"] = str(folder / "data")
    small = next(tier for tier in config["tiers"] if tier["name"] == "small")
    small["deployment"].pop("num_replicas", None)
    small["deployment"]["autoscaling"] = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": args.target,
        "upscale_delay_s": args.upscale_delay_s,
        "downscale_delay_s": args.downscale_delay_s,
    }
    path = folder / "autoscale.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Step:
    def __init__(self, url: str) -> None:
        self.url = url
        self.users = 0
        self.outcomes: list[dict[str, Any]] = []
        self._stop = asyncio.Event()

    async def user(self, client: httpx.AsyncClient) -> None:
        self.users += 1
        try:
            while not self._stop.is_set():
                body = {
                    "model": "small",
                    "messages": [{"role": "user", "content": f"Write a line about the sea. {uuid.uuid4().hex[:8]}"}],
                    "max_tokens": 32,
                    "temperature": 1.0,
                    "stream": True,
                }
                started, failed = time.time(), True
                try:
                    async with client.stream("POST", f"{self.url}/v1/chat/completions", json=body) as response:
                        text = "".join([line async for line in response.aiter_lines()])
                        failed = response.status_code != 200 or '"error"' in text or "[DONE]" not in text
                        status = response.status_code
                except httpx.HTTPError:
                    status = 0
                self.outcomes.append({"at": started, "status": status, "failed": failed})
        finally:
            self.users -= 1

    def stop(self) -> None:
        self._stop.set()


async def _timeline(url: str, step: Step, until: asyncio.Event, rows: list[dict[str, Any]], t0: float) -> None:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        while not until.is_set():
            try:
                report = (await client.get(f"{url}/admin/status")).json()
                small = report["tiers"]["small"]
                states = (small.get("deployment") or {}).get("replica_states", {})
                rows.append(
                    {
                        "t_s": round(time.time() - t0, 1),
                        "users": step.users,
                        "replicas_running": states.get("RUNNING", 0),
                        "replica_states": states,
                        "engine_running": small["running"],
                        "engine_waiting": small["queue"],
                        "ttft_p50_s": small["ttft_p50_s"],
                    }
                )
            except (httpx.HTTPError, KeyError, ValueError) as error:
                rows.append({"t_s": round(time.time() - t0, 1), "error": repr(error)})
            await asyncio.sleep(2)


async def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    step, done = Step(url), asyncio.Event()
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    watcher = asyncio.create_task(_timeline(url, step, done, rows, t0))
    await asyncio.sleep(args.idle_s)
    load_started = time.time() - t0
    async with httpx.AsyncClient(timeout=600) as client:
        users = [asyncio.create_task(step.user(client)) for _ in range(args.users)]
        await asyncio.sleep(args.load_s)
        step.stop()
        await asyncio.gather(*users)
    load_ended = time.time() - t0
    await asyncio.sleep(args.after_s)
    done.set()
    await watcher
    up = next((r["t_s"] for r in rows if r.get("replicas_running", 0) >= 2 and r["t_s"] >= load_started), None)
    down = next((r["t_s"] for r in rows if r["t_s"] >= load_ended and r.get("replicas_running") == 1), None)
    failed = [o for o in step.outcomes if o["failed"]]
    return {
        "users": args.users,
        "autoscaling": {
            "min": 1,
            "max": 2,
            "target_ongoing_requests": args.target,
            "upscale_delay_s": args.upscale_delay_s,
            "downscale_delay_s": args.downscale_delay_s,
        },
        "load_started_s": round(load_started, 1),
        "load_ended_s": round(load_ended, 1),
        "second_replica_running_s": up,
        "scale_up_took_s": round(up - load_started, 1) if up is not None else None,
        "back_to_one_s": down,
        "scale_down_took_s": round(down - load_ended, 1) if down is not None else None,
        "requests": len(step.outcomes),
        "failed": len(failed),
        "timeline": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--target", type=float, default=2.0, help="target_ongoing_requests per replica")
    parser.add_argument("--upscale-delay-s", type=float, default=5.0)
    parser.add_argument("--downscale-delay-s", type=float, default=30.0)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--load-s", type=float, default=150.0)
    parser.add_argument("--after-s", type=float, default=90.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autoscale-bench-") as tmp:
        folder = Path(tmp)
        with served(_config(folder, args), folder / "tierserve.log", {"TIERSERVE_ADMIN_KEY": ADMIN_KEY}) as url:
            result = asyncio.run(_run(url, args))
    result["command"] = "python -m benchmarks.autoscale_bench " + " ".join(sys.argv[1:])
    text = json.dumps(result, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=1))
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
