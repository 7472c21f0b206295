"""OpenTelemetry traces of the gateway's request flow: one server span per request, a child per stage.

A request's span carries what an operator asks of one request afterwards: tenant, model asked for, cache
outcome and similarity, route score and reason, the tier that answered (and the one it escalated from), the
replica, token counts, TTFT and the HTTP status. Stages (embed, cache_lookup, route, generate, cache_store)
are children, so a slow request shows where its time went. A caller's W3C `traceparent` becomes the parent,
and the tier receives the `generate` span's context so a vLLM engine started with `otlp_traces_endpoint`
joins the same trace.

The tracer is built from config and handed to the gateway (no global provider is installed); with
`tracing.exporter: none` it is OpenTelemetry's no-op tracer, and spans cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from serving.config import TracingConfig

TRACE_HEADERS = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()
_INSTRUMENTATION = "tierserve.gateway"


def build_tracer(config: TracingConfig) -> tuple[Tracer, Any]:
    """The gateway's tracer and its provider (None for `none`), whose `shutdown()` flushes spans still queued."""
    if config.exporter == "none":
        return trace.NoOpTracer(), None
    # Imported here: only a stack that exports traces pays for the SDK and its exporter.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBasedTraceIdRatio(config.sample_ratio),
    )
    exporter: SpanExporter
    if config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers) or None, timeout=10)
    else:
        exporter = ConsoleSpanExporter()
    # Batched: exporting never sits on a request's path; a collector that is down costs dropped spans only.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider.get_tracer(_INSTRUMENTATION), provider


def caller_context(headers: Mapping[str, str]) -> dict[str, str]:
    """The W3C trace headers a caller sent, as plain data that can travel with the request."""
    return {name: headers[name] for name in TRACE_HEADERS if headers.get(name)}


class RequestTrace:
    """One request's server span. Stages open children; `end` closes it once, with the HTTP status."""

    def __init__(self, tracer: Tracer, name: str, parent: Mapping[str, str], attributes: Mapping[str, Any]) -> None:
        self._tracer = tracer
        parent_context = _PROPAGATOR.extract(dict(parent)) if parent else None
        self._span = tracer.start_span(name, context=parent_context, kind=SpanKind.SERVER, attributes=attributes)
        self._context: Context = trace.set_span_in_context(self._span)
        self._ended = False

    @property
    def trace_id(self) -> str | None:
        """Hex trace id when this request is being recorded (for the response header and logs)."""
        context = self._span.get_span_context()
        return f"{context.trace_id:032x}" if context.is_valid and self._span.is_recording() else None

    def set(self, **attributes: Any) -> None:
        """Attributes as `tierserve.<name>` (None values are skipped)."""
        for name, value in attributes.items():
            if value is not None:
                self._span.set_attribute(f"tierserve.{name}", value)

    def set_raw(self, attributes: Mapping[str, Any]) -> None:
        """Attributes under their own names (OpenTelemetry's gen_ai.* and http.* conventions)."""
        for name, value in attributes.items():
            if value is not None:
                self._span.set_attribute(name, value)

    @contextmanager
    def stage(self, name: str, **attributes: Any) -> Iterator[trace.Span]:
        """A child span around one stage; an exception marks it failed and propagates."""
        with self._tracer.start_as_current_span(
            name, context=self._context, attributes={f"tierserve.{k}": v for k, v in attributes.items()}
        ) as span:
            yield span

    def start_stage(self, name: str, **attributes: Any) -> trace.Span:
        """A child span that outlives one block (a generation streamed to the client); the caller ends it."""
        return self._tracer.start_span(
            name, context=self._context, attributes={f"tierserve.{k}": v for k, v in attributes.items()}
        )

    def carrier(self, span: trace.Span | None = None) -> dict[str, str]:
        """W3C headers naming `span` (default: the request span) as the parent, for the next hop."""
        carrier: dict[str, str] = {}
        context = trace.set_span_in_context(span) if span is not None else self._context
        _PROPAGATOR.inject(carrier, context=context)
        return carrier

    def end(self, status: int, error: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._span.set_attribute("http.response.status_code", status)
        if error is not None:
            self._span.set_attribute("error.type", error)
        # OpenTelemetry's rule for server spans: a 4xx is the client's error, not a failed span.
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()
