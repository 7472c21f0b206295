"""OpenAI wire models: requests, responses, stream chunks and errors."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    # Fields the gateway does not read are kept (and forwarded to the tier untouched, as the client's JSON):
    # vLLM's own request models in the tier validate them, so no field is dropped on the way.
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Request):
    include_usage: bool | None = False


class ContentPart(_Request):
    """One part of a message's content: text, or another kind (image_url, input_audio, ...) the tier judges."""

    type: str
    text: str | None = None


Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(_Request):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")

    def non_text_parts(self) -> list[str]:
        if not isinstance(self.content, list):
            return []
        return [part.type for part in self.content if part.type != "text"]


class _GatewayFields(_Request):
    """What the gateway itself reads: the model, streaming, and what decides caching and routing."""

    # Bounds only on what the gateway itself reads (caching, routing); vLLM's models in the tier judge the rest.
    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # tierserve's own field (the openai client's `extra_body`): the versioned system prompt to serve with, like the
    # x-tierserve-prompt header. The gateway reads it and takes it out of what the tier sees.
    tierserve_prompt: str | None = Field(default=None, min_length=1, max_length=200)

    def include_usage(self) -> bool:
        return self.stream_options is not None and bool(self.stream_options.include_usage)

    def sampled_temperature(self) -> float:
        # Unset, vLLM samples at the model's default (1.0 for the embedded models).
        return 1.0 if self.temperature is None else self.temperature

    def cache_bypass_reason(self) -> str | None:
        """Why this request's answer cannot be replayed from the cache (its response holds more than the text
        the cache keeps), or None when it can."""
        if self.n is not None and self.n > 1:
            return "n"
        extra = self.model_extra or {}
        if extra.get("best_of") not in (None, 1) or extra.get("use_beam_search"):
            return "n"
        if extra.get("logprobs") or extra.get("top_logprobs") or extra.get("prompt_logprobs") is not None:
            return "logprobs"
        if extra.get("echo") or extra.get("return_token_ids") or extra.get("return_tokens_as_token_ids"):
            return "token_details"
        return None


# Fields that do not change the answer: the rest of the body is part of the cache key's exact part.
ANSWER_NEUTRAL_FIELDS = frozenset({"model", "messages", "prompt", "stream", "stream_options", "user", "request_id"})


class ChatCompletionRequest(_GatewayFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def cache_bypass_reason(self) -> str | None:
        if self.tools:
            return "tools"
        return super().cache_bypass_reason()


class CompletionRequest(_GatewayFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)

    def prompt_text(self) -> str:
        """The text the cache and the router see: the prompt, or its strings joined (token-id prompts: none)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(p for p in self.prompt if isinstance(p, str))

    def token_limit(self) -> int | None:
        return self.max_tokens

    def cache_bypass_reason(self) -> str | None:
        if not isinstance(self.prompt, str):
            return "prompt_list"
        return super().cache_bypass_reason()


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tierserve"
    root: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class InvalidateRequest(BaseModel):
    """Body of POST /admin/cache/invalidate: no fields = everything."""

    model_config = ConfigDict(extra="forbid")
    tenant: str | None = None
    model: str | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
