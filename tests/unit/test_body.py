"""serving.body: what the HTTP edge accepts as a request body, and the 400 naming the field otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serving.body import MAX_JSON_DEPTH, parse_body
from serving.errors import InvalidRequest

CHAT = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}


def raw(**fields: Any) -> bytes:
    return json.dumps({**CHAT, **fields}).encode()


def test_a_normal_body_parses() -> None:
    assert parse_body(raw(seed=2**63 - 1, temperature=0.5)) == {**CHAT, "seed": 2**63 - 1, "temperature": 0.5}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"seed": 2**63}, "seed"),
        ({"top_k": -(2**63) - 1}, "top_k"),
        ({"logit_bias": {"5": 2**70}}, "logit_bias.5"),
        ({"stop_token_ids": [1, 2**64]}, "stop_token_ids.1"),
    ],
)
def test_integers_beyond_64_bits_are_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(raw(**fields))
    assert caught.value.param == param and caught.value.code == "integer_out_of_range"
    assert caught.value.message.startswith(f"{param}: ")


def test_nesting_is_bounded() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        deep = {"a": deep}
    with pytest.raises(InvalidRequest) as caught:
        parse_body(raw(metadata=deep))
    assert caught.value.param == "metadata" and "deeper than 64" in caught.value.message
    shallow: Any = 1
    for _ in range(MAX_JSON_DEPTH - 2):
        shallow = {"a": shallow}
    assert parse_body(raw(metadata=shallow))["metadata"] == shallow


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]}, "tools.0"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"required": "x"}}}]}, "tools.0"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"minimum": "1"}}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_schemas_must_compile(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(raw(**fields))
    assert (caught.value.param or "").startswith(param) and caught.value.code == "invalid_schema"


def test_valid_schemas_pass() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    assert parse_body(raw(tools=tools))["tools"] == tools


@pytest.mark.parametrize(
    "content", [b"NaN", b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": "\xff"}', b"[]", b""]
)
def test_not_one_finite_json_object(content: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(content)
    assert caught.value.code == "invalid_json" and caught.value.status == 400
