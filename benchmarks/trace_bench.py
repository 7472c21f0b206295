"""What request tracing costs the gateway: the same flow with `tracing.exporter` none vs otlp.

The gateway's request flow (`GatewayService.handle`, routed `auto` requests, streamed and not) runs in process
over an instant tier, so the figure is the flow's own CPU time with and without spans; the OTLP exporter
batches spans to a real OTLP/HTTP receiver on loopback (a minimal one started here), as in production.

    python -m benchmarks.trace_bench [--requests 3000] [--out docs/trace-bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from router import build_router
from serving.config import StackConfig, TracingConfig, parse_config
from serving.contract import ProbeResult, TierDelta, TierEvent, TierFinished, TierRequest, TierStarted
from serving.formatting import ResponseFormatter
from serving.gateway import GatewayService, build_gateway
from serving.jobs import job_from_chat
from serving.metrics import GatewayMetrics
from serving.protocol import ChatCompletionRequest
from serving.tracing import build_tracer


class InstantTier:
    """A tier that answers at once: started, three deltas (or one whole answer), finished."""

    def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]:
        formatter = ResponseFormatter(request.endpoint, request.request_id, "bench")
        pieces = ("Paris", " is", " the capital.")

        async def events() -> AsyncIterator[TierEvent]:
            yield TierStarted(replica="bench-1")
            if not json.loads(request.body).get("stream"):
                body = formatter.full("".join(pieces), "stop", 12, 3)
                yield TierFinished("stop", 12, 3, body=json.dumps(body), text="".join(pieces))
                return
            for piece in pieces:
                yield TierDelta(data=formatter.content(piece).removeprefix("data: ").strip(), text=piece)
            yield TierFinished("stop", 12, 3)

        return events()

    async def probe(self) -> ProbeResult:
        return ProbeResult(ok=True, replica="bench-1", generate_ms=0.0)


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _config() -> StackConfig:
    return parse_config(
        {
            "tiers": [{"name": "small", "model": "small"}, {"name": "large", "model": "large"}],
            "router": {"scorer": "heuristic", "thresholds": [0.5]},
            "cache": {"enabled": False},
        }
    )


async def _time_requests(service: GatewayService, requests: int, stream: bool) -> list[float]:
    data = {
        "model": "auto",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": stream,
    }
    body = ChatCompletionRequest.model_validate(data)
    raw = json.dumps(data).encode()
    took = []
    for number in range(requests):
        job = job_from_chat(body, raw, data, f"bench-{number}", "default")
        started = time.perf_counter()
        reply = await service.handle(job)
        if reply.stream is not None:
            async for _ in reply.stream:
                pass
        took.append(time.perf_counter() - started)
    return took


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


def measure(requests: int) -> dict[str, Any]:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
    config = _config()
    result: dict[str, Any] = {"requests": requests}
    try:
        modes = {
            "none": TracingConfig(),
            "otlp": TracingConfig(exporter="otlp", endpoint=endpoint),
            "otlp10": TracingConfig(exporter="otlp", endpoint=endpoint, sample_ratio=0.1),
        }
        for mode, tracing in modes.items():
            tracer, provider = build_tracer(tracing)
            tiers = {"small": InstantTier(), "large": InstantTier()}
            service = build_gateway(
                config, tiers, None, build_router(config.router, ["small", "large"]), GatewayMetrics(), tracer
            )
            for stream in (False, True):
                asyncio.run(_time_requests(service, requests // 10, stream))  # warm-up
                times = asyncio.run(_time_requests(service, requests, stream))
                result[f"{mode}_{'stream' if stream else 'json'}"] = _summary(times)
            if provider is not None:
                provider.shutdown()
    finally:
        sink.shutdown()
        sink.server_close()
    for kind in ("json", "stream"):
        for mode in ("otlp", "otlp10"):
            overhead = result[f"{mode}_{kind}"]["p50_us"] - result[f"none_{kind}"]["p50_us"]
            result[f"overhead_{mode}_{kind}_p50_us"] = round(overhead, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="Timed requests per mode.")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here too.")
    args = parser.parse_args(argv)
    result = measure(args.requests)
    print(f"gateway flow per request, {args.requests} requests each (µs, in process, instant tier):")
    print(f"{'':30}{'p50':>9}{'p99':>10}{'mean':>9}{'p50 overhead':>14}")
    for kind in ("json", "stream"):
        for mode, label in (("none", "no tracing"), ("otlp", "OTLP, every trace"), ("otlp10", "OTLP, 10 % sampled")):
            figures = result[f"{mode}_{kind}"]
            overhead = result.get(f"overhead_{mode}_{kind}_p50_us", 0.0)
            print(
                f"{kind + ', ' + label:30}{figures['p50_us']:>9.1f}{figures['p99_us']:>10.1f}"
                f"{figures['mean_us']:>9.1f}{overhead:>14.1f}"
            )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
