"""The request body as the HTTP edge accepts it: one JSON object of finite numbers, integers a 64-bit engine can
hold, reasonable nesting and JSON Schemas that compile. Anything else is a 400 naming the field, before any stage
sees the request, so a bad body can never reach an engine and come back as a 5xx."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from serving.errors import InvalidRequest

MAX_JSON_DEPTH = 64
INT64_MAX = 2**63 - 1


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity: no parameter means that
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, checked; raises InvalidRequest (400) naming what is wrong."""
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidRequest("The request body nests too deeply.", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, bad UTF-8, huge or infinite numbers
        raise InvalidRequest(f"The request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    _check_shape(data)
    _check_schemas(data)
    return data


def _path(parts: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in parts)


def _check_shape(data: dict[str, Any]) -> None:
    """Depth and integer range, walked without recursion (a deep body must not exhaust the stack here)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            if len(path) >= MAX_JSON_DEPTH:
                raise InvalidRequest(
                    f"{_path(path[:3])}: the body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels.",
                    param=_path(path[:1]) or None,
                    code="invalid_json",
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((child, (*path, key)) for key, child in items)
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise InvalidRequest(
                f"{_path(path)}: integer {str(value)[:24]}... is out of range (at most 64 bits).",
                param=_path(path),
                code="integer_out_of_range",
            )


def _schemas(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    tools = data.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and "parameters" in function:
                yield f"tools.{index}.function.parameters", function["parameters"]
    response_format = data.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"]
        if "schema" in schema:
            yield "response_format.json_schema.schema", schema["schema"]


def _check_schemas(data: dict[str, Any]) -> None:
    """Tool parameters and structured-output schemas must be JSON Schemas: one that does not compile would
    otherwise be ignored or fail deep in the engine."""
    for path, schema in _schemas(data):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            where = ".".join(str(part) for part in error.absolute_path)
            detail = f" at {where}" if where else ""
            raise InvalidRequest(
                f"{path}: not a valid JSON Schema{detail}: {error.message[:200]}", param=path, code="invalid_schema"
            ) from None
