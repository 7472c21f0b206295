"""One request, one trace: the caller's traceparent, the gateway's spans and vLLM's own request span,
as an OTLP collector receives them from the running stack."""

from __future__ import annotations

import secrets
import time

from tests.e2e.conftest import Stack
from tests.otlp import ReceivedSpan


def wait_for_spans(stack: Stack, trace_id: str, names: set[str], timeout_s: float = 60) -> dict[str, ReceivedSpan]:
    """Spans are exported in batches (every few seconds): poll the collector until all have arrived."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, ReceivedSpan] = {}
    while time.monotonic() < deadline:
        found = {span.name: span for span in stack.collector.spans() if span.trace_id == trace_id}
        if names <= set(found):
            return found
        time.sleep(1)
    raise AssertionError(f"spans of trace {trace_id}: {sorted(found)}; expected {sorted(names)}")


def test_a_request_is_one_trace_from_the_caller_through_the_gateway_into_vllm(stack: Stack) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    raw = stack.client().chat.completions.with_raw_response.create(
        model="small",
        messages=[{"role": "user", "content": f"Name one colour. (trace {trace_id[:8]})"}],
        max_tokens=8,
        temperature=0,
        extra_headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    completion = raw.parse()
    assert raw.headers["x-tierserve-trace-id"] == trace_id
    spans = wait_for_spans(stack, trace_id, {"chat small", "embed", "cache_lookup", "generate", "llm_request"})

    root = spans["chat small"]
    assert root.service == "tierserve-e2e" and root.parent_span_id == caller_span
    assert root.attributes["tierserve.cache"] == "miss" and root.attributes["tierserve.tier"] == "small"
    assert root.attributes["tierserve.request_id"] == raw.headers["x-request-id"]
    assert completion.usage is not None
    assert root.attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens

    generate = spans["generate"]
    assert generate.parent_span_id == root.span_id
    # vLLM's own span (its engine exports it) hangs under the gateway's generate span.
    engine = spans["llm_request"]
    assert engine.parent_span_id == generate.span_id
    assert engine.attributes["gen_ai.usage.completion_tokens"] == completion.usage.completion_tokens
    # vLLM's serving layer names the engine request as its response: chatcmpl-<our request id>.
    assert engine.attributes["gen_ai.request.id"] == f"chatcmpl-{raw.headers['x-request-id']}"
