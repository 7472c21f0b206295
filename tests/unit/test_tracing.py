"""Request traces: one server span per request with its stages as children, the caller's trace joined,
the tier handed the `generate` span's context, and a real OTLP/HTTP export.

Spans are collected with the SDK's in-memory exporter (the gateway runs over fake tiers and a real Redis).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, StatusCode, Tracer

from serving.config import TracingConfig
from serving.tracing import RequestTrace, build_tracer, caller_context
from tests.fakes import FakeTier
from tests.otlp import Collector, start_collector
from tests.unit.gateway_stack import ALPHA, HARD, Stack, StackFactory

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> Tracer:
    """A tracer whose spans land in `spans` as soon as they end."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider.get_tracer("test")


@pytest.fixture
async def traced(make_stack: StackFactory, tracer: Tracer) -> Stack:
    return await make_stack(tracer=tracer)


def request_span(spans: InMemorySpanExporter) -> ReadableSpan:
    roots = [s for s in spans.get_finished_spans() if s.name.startswith(("chat ", "text_completion "))]
    assert len(roots) == 1, [s.name for s in spans.get_finished_spans()]
    return roots[0]


def children(spans: InMemorySpanExporter, parent: ReadableSpan) -> dict[str, ReadableSpan]:
    parent_id = parent.context.span_id
    return {s.name: s for s in spans.get_finished_spans() if s.parent is not None and s.parent.span_id == parent_id}


async def test_a_routed_miss_records_every_stage_and_the_decision(traced: Stack, spans: InMemorySpanExporter) -> None:
    response = await traced.chat(model="auto", content=HARD)
    assert response.status_code == 200
    root = request_span(spans)
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "auto"
    assert attrs["tierserve.tenant"] == "alpha" and attrs["tierserve.cache"] == "miss"
    assert attrs["tierserve.tier"] == response.headers["x-tierserve-tier"] == "large"
    assert f"{attrs['tierserve.route_score']:.4f}" == response.headers["x-tierserve-route-score"]
    assert attrs["tierserve.route_reason"] == "score"
    assert attrs["gen_ai.usage.input_tokens"] == 40 and attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["http.response.status_code"] == 200 and attrs["tierserve.replica"] == "large-1"
    assert root.status.status_code is StatusCode.UNSET
    assert set(children(spans, root)) == {"cache_exact", "embed", "cache_lookup", "route", "generate", "cache_store"}
    assert response.headers["x-tierserve-trace-id"] == f"{root.context.trace_id:032x}"


async def test_the_tier_gets_the_generate_span_as_parent(traced: Stack, spans: InMemorySpanExporter) -> None:
    await traced.chat(model="small")
    generate = children(spans, request_span(spans))["generate"]
    traceparent = traced.small.payloads[0]["trace_headers"]["traceparent"]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (trace_id, span_id) == (f"{generate.context.trace_id:032x}", f"{generate.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


async def test_a_hit_is_one_short_trace_without_generation(traced: Stack, spans: InMemorySpanExporter) -> None:
    await traced.chat()
    spans.clear()
    response = await traced.chat()
    assert response.headers["x-tierserve-cache"] == "hit"
    root = request_span(spans)
    assert root.attributes is not None and root.attributes["tierserve.cache"] == "hit"
    assert "tierserve.similarity" in root.attributes and root.attributes["tierserve.answered_by"] == "small"
    assert set(children(spans, root)) == {"cache_exact"}  # an identical repeat: nothing embedded


async def test_the_callers_traceparent_is_the_parent(traced: Stack, spans: InMemorySpanExporter) -> None:
    response = await traced.chat(headers={**ALPHA, "traceparent": TRACEPARENT})
    root = request_span(spans)
    assert f"{root.context.trace_id:032x}" == CALLER_TRACE == response.headers["x-tierserve-trace-id"]
    assert root.parent is not None and f"{root.parent.span_id:016x}" == CALLER_SPAN


async def test_a_stream_is_traced_until_its_last_chunk(traced: Stack, spans: InMemorySpanExporter) -> None:
    response = await traced.chat(stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    root = request_span(spans)
    assert root.attributes is not None and root.attributes["gen_ai.usage.output_tokens"] == 4
    assert root.attributes["tierserve.stream"] is True
    assert root.end_time is not None and root.end_time >= children(spans, root)["cache_store"].end_time  # type: ignore[operator]


async def test_client_errors_are_recorded_but_not_failed_spans(traced: Stack, spans: InMemorySpanExporter) -> None:
    response = await traced.chat(model="no-such-model")
    assert response.status_code == 404
    root = request_span(spans)
    assert root.attributes is not None and root.attributes["http.response.status_code"] == 404
    assert root.status.status_code is StatusCode.UNSET  # OpenTelemetry: a 4xx is not the server's failure


async def test_a_failed_tier_fails_the_span_and_its_generation(
    make_stack: StackFactory, tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    stack = await make_stack(small=FakeTier(fail="start"), tracer=tracer)
    response = await stack.chat()
    assert response.status_code == 503
    root = request_span(spans)
    assert root.status.status_code is StatusCode.ERROR
    assert children(spans, root)["generate"].status.status_code is StatusCode.ERROR


async def test_a_tier_failing_mid_stream_fails_both_spans(
    make_stack: StackFactory, tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    stack = await make_stack(small=FakeTier(fail="midway"), tracer=tracer)
    response = await stack.chat(stream=True)
    assert response.status_code == 200 and '"error"' in response.text  # in-band, the headers were sent
    root = request_span(spans)
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes is not None and root.attributes["http.response.status_code"] == 503
    assert children(spans, root)["generate"].status.status_code is StatusCode.ERROR


async def test_a_rejected_request_does_not_fail_its_generation_span(
    make_stack: StackFactory, tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    stack = await make_stack(small=FakeTier(error=FakeTier.context_length_error()), tracer=tracer)
    response = await stack.chat()
    assert response.status_code == 400
    root = request_span(spans)
    assert root.status.status_code is StatusCode.UNSET
    assert children(spans, root)["generate"].status.status_code is StatusCode.UNSET


async def test_without_tracing_nothing_is_added(stack: Stack) -> None:
    response = await stack.chat()
    assert response.status_code == 200 and "x-tierserve-trace-id" not in response.headers
    assert "trace_headers" not in stack.small.payloads[0]


def test_no_exporter_means_the_no_op_tracer() -> None:
    tracer, provider = build_tracer(TracingConfig())
    assert isinstance(tracer, NoOpTracer) and provider is None
    assert RequestTrace(tracer, "chat small", {}, {}).carrier() == {}
    # Not recording, yet a caller's context still passes through to the next hop unchanged.
    trace = RequestTrace(tracer, "chat small", {"traceparent": TRACEPARENT}, {})
    assert trace.trace_id is None and trace.carrier() == {"traceparent": TRACEPARENT}


def test_only_w3c_trace_headers_are_taken_from_the_caller() -> None:
    headers = {"traceparent": TRACEPARENT, "tracestate": "k=v", "authorization": "Bearer x", "x-other": "1"}
    assert caller_context(headers) == {"traceparent": TRACEPARENT, "tracestate": "k=v"}
    assert caller_context({"traceparent": ""}) == {}


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector, server = start_collector()
    yield collector
    server.shutdown()
    server.server_close()


def test_otlp_export_reaches_a_collector_as_protobuf(collector: Collector) -> None:
    config = TracingConfig(
        exporter="otlp", endpoint=collector.endpoint, headers={"x-tenant": "ops"}, service_name="ts-test"
    )
    tracer, provider = build_tracer(config)
    trace = RequestTrace(tracer, "chat auto", {}, {"tierserve.tenant": "alpha"})
    with trace.stage("embed"):
        pass
    trace.end(200)
    provider.shutdown()  # flushes the batch
    assert collector.requests, "nothing reached the collector"
    path, headers, _ = collector.requests[0]
    assert path == "/v1/traces" and headers.get("x-tenant") == "ops"
    spans = {span.name: span for span in collector.spans()}
    assert set(spans) == {"chat auto", "embed"} and {s.service for s in spans.values()} == {"ts-test"}
    assert spans["embed"].parent_span_id == spans["chat auto"].span_id
    assert spans["chat auto"].attributes["tierserve.tenant"] == "alpha"


def test_the_trace_benchmark_runs_both_modes() -> None:
    from benchmarks.trace_bench import measure

    result = measure(20)
    for mode in ("none", "otlp", "otlp10"):
        for kind in ("json", "stream"):
            figures = result[f"{mode}_{kind}"]
            assert figures["p50_us"] > 0 and figures["p99_us"] >= figures["p50_us"]
    assert {"overhead_otlp_json_p50_us", "overhead_otlp10_stream_p50_us"} <= set(result)


async def test_the_trace_names_the_open_breaker_and_the_fallback(
    make_stack: StackFactory, tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    options = {"reliability": {"retries": 0, "fallback": ["small"], "breaker": {"failures": 1, "open_s": 30}}}
    stack = await make_stack(large=FakeTier(fail="start"), cache=False, tracer=tracer, tier_options={"large": options})
    assert (await stack.chat(model="large")).headers["x-tierserve-fallback-from"] == "large"  # opens the breaker
    spans.clear()
    assert (await stack.chat(model="large")).status_code == 200
    attributes = dict(request_span(spans).attributes or {})
    assert attributes["tierserve.breaker_open"] == "large" and attributes["tierserve.fallback_from"] == "large"
