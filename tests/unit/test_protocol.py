"""serving.protocol: OpenAI request models accept what we serve and reject what we cannot."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from serving.protocol import ChatCompletionRequest, CompletionRequest


def chat(**overrides: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **overrides}


def completion(**overrides: Any) -> dict[str, Any]:
    return {"model": "small", "prompt": "Once upon a time", **overrides}


def error_locations(error: ValidationError) -> list[str]:
    return [".".join(str(p) for p in item["loc"]) for item in error.errors()]


def test_chat_defaults() -> None:
    request = ChatCompletionRequest.model_validate(chat())
    assert request.n is None and request.temperature is None and request.stream is False
    assert request.sampled_temperature() == 1.0  # vLLM's default for the embedded models
    assert request.token_limit() is None
    assert request.include_usage() is False
    assert request.messages[0].text() == "hi"
    assert request.cache_bypass_reason() is None


def test_chat_token_limit_prefers_max_completion_tokens() -> None:
    assert ChatCompletionRequest.model_validate(chat(max_tokens=10)).token_limit() == 10
    both = ChatCompletionRequest.model_validate(chat(max_tokens=10, max_completion_tokens=20))
    assert both.token_limit() == 20


def test_chat_stream_options() -> None:
    request = ChatCompletionRequest.model_validate(chat(stream=True, stream_options={"include_usage": True}))
    assert request.include_usage() is True


def test_content_as_list_of_text_parts() -> None:
    request = ChatCompletionRequest.model_validate(
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "you"}],
                }
            ]
        )
    )
    assert request.messages[0].text() == "Hello, you"


def test_none_content_is_empty_text() -> None:
    request = ChatCompletionRequest.model_validate(
        chat(messages=[{"role": "assistant", "content": None}, {"role": "user", "content": "go on"}])
    )
    assert request.messages[0].text() == ""


def test_fields_the_gateway_does_not_read_are_kept() -> None:
    """Nothing is dropped: vLLM's own models in the tier judge what the gateway does not read."""
    request = ChatCompletionRequest.model_validate(
        chat(logit_bias={"50256": -100}, parallel_tool_calls=False, metadata={"k": "v"}, top_k=5)
    )
    assert request.model_dump()["logit_bias"] == {"50256": -100}
    assert request.model_extra == {
        "logit_bias": {"50256": -100},
        "parallel_tool_calls": False,
        "metadata": {"k": "v"},
        "top_k": 5,
    }
    message = ChatCompletionRequest.model_validate(
        chat(messages=[{"role": "user", "content": "hi", "refusal": None}])
    ).messages[0]
    assert message.text() == "hi"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"use_beam_search": True}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "logprobs"),
        ({"prompt_logprobs": 0}, "logprobs"),
        ({"return_token_ids": True}, "token_details"),
        ({"response_format": {"type": "json_object"}}, None),  # the answer is text: cacheable
        ({"tools": []}, None),
    ],
)
def test_cache_bypass_reasons(overrides: dict[str, Any], reason: str | None) -> None:
    assert ChatCompletionRequest.model_validate(chat(**overrides)).cache_bypass_reason() == reason


def test_completion_bypass_reasons() -> None:
    assert CompletionRequest.model_validate(completion(echo=True)).cache_bypass_reason() == "token_details"
    assert CompletionRequest.model_validate(completion(logprobs=2)).cache_bypass_reason() == "logprobs"
    assert CompletionRequest.model_validate(completion(prompt=["a", "b"])).cache_bypass_reason() == "prompt_list"
    assert CompletionRequest.model_validate(completion(suffix="!")).cache_bypass_reason() is None


def test_image_parts_are_kept_and_named() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    request = ChatCompletionRequest.model_validate(
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "what is it?"}, part]}])
    )
    assert request.messages[0].text() == "what is it?"
    assert request.messages[0].non_text_parts() == ["image_url"]


@pytest.mark.parametrize(
    ("overrides", "location", "needle"),
    [
        ({"messages": []}, "messages", "at least 1 item"),
        ({"max_tokens": -1}, "max_tokens", "greater than or equal to 1"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "greater than or equal to 1"),
        ({"temperature": -0.1}, "temperature", "greater than or equal to 0"),
        ({"temperature": "hot"}, "temperature", "valid number"),
        ({"n": 0}, "n", "greater than or equal to 1"),
        ({"model": ""}, "model", "at least 1 character"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", "Input should be"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", ""),
        ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages.0.content", ""),
        ({"messages": "hi"}, "messages", "valid list"),
    ],
)
def test_chat_rejects(overrides: dict[str, Any], location: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(chat(**overrides))
    locations = error_locations(caught.value)
    assert any(loc == location or loc.startswith(f"{location}.") for loc in locations), locations
    assert needle in str(caught.value)


def test_chat_requires_model_and_messages() -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({})
    assert set(error_locations(caught.value)) == {"model", "messages"}


def test_completion_prompts() -> None:
    assert CompletionRequest.model_validate(completion(prompt=["only one"])).prompt_text() == "only one"
    assert CompletionRequest.model_validate(completion(prompt=["a", "b"])).prompt_text() == "a\nb"
    assert CompletionRequest.model_validate(completion(prompt=[1, 2])).prompt_text() == ""
    assert CompletionRequest.model_validate(completion()).token_limit() == 16  # OpenAI's default


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"max_tokens": -5}, "greater than or equal to 1"),
        ({"prompt": {"text": "x"}}, "prompt"),
        ({"prompt": 5}, "prompt"),
    ],
)
def test_completion_rejects(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        CompletionRequest.model_validate(completion(**overrides))
