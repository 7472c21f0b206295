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
    assert request.n == 1 and request.temperature == 1.0 and request.stream is False
    assert request.token_limit() is None
    assert request.stop_list() == []
    assert request.include_usage() is False
    assert request.messages[0].text() == "hi"


def test_chat_token_limit_prefers_max_completion_tokens() -> None:
    assert ChatCompletionRequest.model_validate(chat(max_tokens=10)).token_limit() == 10
    both = ChatCompletionRequest.model_validate(chat(max_tokens=10, max_completion_tokens=20))
    assert both.token_limit() == 20


def test_chat_stream_options_and_stop() -> None:
    request = ChatCompletionRequest.model_validate(
        chat(stream=True, stream_options={"include_usage": True}, stop="END")
    )
    assert request.include_usage() is True
    assert request.stop_list() == ["END"]
    assert ChatCompletionRequest.model_validate(chat(stop=["a", "b"])).stop_list() == ["a", "b"]


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


def test_unknown_fields_are_ignored() -> None:
    request = ChatCompletionRequest.model_validate(
        chat(logit_bias={"50256": -100}, parallel_tool_calls=False, metadata={"k": "v"})
    )
    assert not hasattr(request, "logit_bias")
    assert "logit_bias" not in request.model_dump()
    message = ChatCompletionRequest.model_validate(
        chat(messages=[{"role": "user", "content": "hi", "refusal": None}])
    ).messages[0]
    assert message.text() == "hi"


@pytest.mark.parametrize(
    ("overrides", "location", "needle"),
    [
        ({"n": 2}, "n", "only n=1 is supported"),
        ({"messages": []}, "messages", "at least 1 item"),
        ({"messages": [{"role": "system", "content": "be terse"}]}, "", "at least one user message"),
        ({"max_tokens": -1}, "max_tokens", "greater than or equal to 1"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "greater than or equal to 1"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"temperature": -0.1}, "temperature", "greater than or equal to 0"),
        ({"top_p": 0}, "top_p", "greater than 0"),
        ({"stop": ["1", "2", "3", "4", "5"]}, "stop", "at most 4 stop sequences"),
        ({"model": ""}, "model", "at least 1 character"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", "Input should be"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content",
            "",
        ),
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


def test_completion_accepts_a_single_prompt_in_a_list() -> None:
    request = CompletionRequest.model_validate(completion(prompt=["only one"]))
    assert request.prompt_text() == "only one"
    assert request.token_limit() == 16  # OpenAI's default for /v1/completions


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"prompt": ["one", "two"]}, "exactly one prompt"),
        ({"prompt": []}, "exactly one prompt"),
        ({"prompt": ""}, "prompt must not be empty"),
        ({"logprobs": 5}, "echo, logprobs and suffix are not supported"),
        ({"echo": True}, "echo, logprobs and suffix are not supported"),
        ({"suffix": "!"}, "echo, logprobs and suffix are not supported"),
        ({"n": 2}, "only n=1 is supported"),
        ({"max_tokens": -5}, "greater than or equal to 1"),
        ({"prompt": [1, 2]}, "Input should be a valid string"),
    ],
)
def test_completion_rejects(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        CompletionRequest.model_validate(completion(**overrides))


def test_completion_ignores_unknown_fields() -> None:
    request = CompletionRequest.model_validate(completion(best_of=1, logit_bias={}))
    assert request.prompt_text() == "Once upon a time"
    assert "best_of" not in request.model_dump()
