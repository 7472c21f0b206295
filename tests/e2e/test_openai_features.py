"""The OpenAI features vLLM serves, through the whole stack with the official `openai` client: tool calls,
structured outputs, logprobs, n, echo, and bad input answered 4xx (never 5xx)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.e2e.conftest import ALPHA_KEY, Stack
from tests.e2e.conftest import WEATHER_TOOL as WEATHER
from tests.e2e.test_openai_api import unique

pytestmark = pytest.mark.slow


def test_named_tool_choice_streams_tool_call_deltas(stack: Stack) -> None:
    with stack.client().chat.completions.with_streaming_response.create(
        model="small",
        messages=[{"role": "user", "content": unique("What is the weather in Paris?")}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=120,
        temperature=0,
        stream=True,
    ) as raw:
        assert raw.headers["x-tierserve-cache"] == "bypass"
        assert raw.headers["x-tierserve-cache-bypass"] == "tools"  # tool calls are not replayed from the cache
        chunks = [c for c in raw.parse() if c.choices]
    calls = [call for c in chunks for call in c.choices[0].delta.tool_calls or []]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert "".join((c.function.arguments or "") for c in calls if c.function is not None)


def test_tool_calling_loop_with_the_official_client(stack: Stack) -> None:
    client = stack.client()
    messages: list[Any] = [{"role": "user", "content": unique("What is the weather in Oslo?")}]
    first = client.chat.completions.create(
        model="small", messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=150, temperature=0
    )
    message = first.choices[0].message
    assert message.tool_calls, first
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": "Oslo", "celsius": 4})},
    ]
    final = client.chat.completions.create(model="small", messages=messages, tools=[WEATHER], max_tokens=40)
    assert final.choices[0].finish_reason in {"stop", "length", "tool_calls"}
    assert final.choices[0].message.content or final.choices[0].message.tool_calls


class Capital(BaseModel):
    country: str
    capital: str


def test_parse_with_a_pydantic_response_format(stack: Stack) -> None:
    completion = stack.client().chat.completions.parse(
        model="small",
        messages=[{"role": "user", "content": unique("Name a country and its capital.")}],
        response_format=Capital,
        max_tokens=200,
        temperature=0,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Capital)


def test_json_object_and_logprobs(stack: Stack) -> None:
    completion = stack.client().chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": unique("Give a JSON object with a key 'a'.")}],
        response_format={"type": "json_object"},
        logprobs=True,
        top_logprobs=3,
        max_tokens=60,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.message.content is not None and choice.message.content.lstrip().startswith("{")
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert completion.usage is not None
    assert len(choice.logprobs.content) == completion.usage.completion_tokens
    assert all(len(item.top_logprobs) == 3 for item in choice.logprobs.content)


def test_n_choices_and_completion_echo(stack: Stack) -> None:
    client = stack.client()
    chat = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": unique("Name a colour.")}],
        n=2,
        max_tokens=8,
        temperature=1.0,
        seed=3,
    )
    assert [c.index for c in chat.choices] == [0, 1]
    prompt = unique("The sky is")
    echoed = client.completions.create(model="small", prompt=prompt, echo=True, logprobs=1, max_tokens=4, temperature=0)
    assert echoed.choices[0].text.startswith(prompt)
    assert echoed.choices[0].logprobs is not None and echoed.choices[0].logprobs.tokens


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"seed": 2**70}, "seed"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"max_tokens": 2**70}, "max_tokens"),
        ({"top_k": 2**70}, "top_k"),
        ({"n": 2**40}, None),
        ({"logit_bias": {"99999999999": 5}}, "logit_bias"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]}, "tools"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, None),
    ],
)
def test_bad_fields_are_400_naming_the_field(stack: Stack, body: dict[str, Any], param: str | None) -> None:
    payload = {"model": "small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **body}
    response = httpx.post(
        f"{stack.url}/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {ALPHA_KEY}"}, timeout=60
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    if param is not None:
        assert (error["param"] or "").startswith(param) or param in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "small", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"model": "small", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
        b'{"model": "small", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
        b'{"model": "small", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "small", "messages": [{"role": "user", "content": "hi"}], "seed": 1' + b"0" * 5000 + b"}",
    ],
)
def test_malformed_bodies_are_400(stack: Stack, raw: bytes) -> None:
    response = httpx.post(
        f"{stack.url}/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {ALPHA_KEY}", "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"


def test_unknown_role_names_the_field(stack: Stack) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        stack.client().chat.completions.create(
            model="small",
            messages=[{"role": "wizard", "content": "hi"}],  # type: ignore[list-item, misc]
            max_tokens=4,
        )
    assert caught.value.body is not None and "messages.0.role" in str(caught.value.body)


def test_embeddings_from_the_gateways_embedder(stack: Stack) -> None:
    result = stack.client().embeddings.create(
        model="all-MiniLM-L6-v2",
        input=["How do I reset my password?", "I forgot my password, how can I change it?", "The sea is blue."],
    )
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))  # the rows are normalised

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert result.usage.prompt_tokens > 15
    with pytest.raises(openai.NotFoundError):
        stack.client().embeddings.create(model="text-embedding-3-small", input="x")
