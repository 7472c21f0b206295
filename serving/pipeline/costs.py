"""A request's cost where people look: `usage.cost_usd` and `usage.saved_usd` (extension fields the `openai` client
keeps in `usage.model_extra`), and the headers `x-tierserve-cost-usd` / `x-tierserve-saved-usd` on whole answers
(a stream's headers leave before its cost is known: there the usage chunk carries it, with include_usage)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from serving.pipeline.context import Reply
from serving.tenancy.pricing import Charge
from serving.tenancy.windows import to_usd

COST_HEADER = "x-tierserve-cost-usd"
SAVED_HEADER = "x-tierserve-saved-usd"


def _usd(micro: int) -> float:
    return round(to_usd(micro), 6)


def _stamp(usage: dict[str, Any], charge: Charge) -> None:
    usage["cost_usd"] = _usd(charge.cost_micro)
    usage["saved_usd"] = _usd(charge.saved_cache_micro + charge.saved_routing_micro)


def with_cost(reply: Reply, charge: Charge | None) -> Reply:
    """A whole answer with its cost in the headers and in `usage`."""
    if charge is None:
        return reply
    headers = {
        **reply.headers,
        COST_HEADER: f"{_usd(charge.cost_micro):.6f}",
        SAVED_HEADER: f"{_usd(charge.saved_cache_micro + charge.saved_routing_micro):.6f}",
    }
    if reply.body is not None and isinstance(reply.body.get("usage"), dict):
        body = {**reply.body, "usage": dict(reply.body["usage"])}
        _stamp(body["usage"], charge)
        return dataclasses.replace(reply, headers=headers, body=body)
    if reply.raw_body is not None:
        data = json.loads(reply.raw_body)
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            _stamp(data["usage"], charge)
            return dataclasses.replace(reply, headers=headers, raw_body=None, body=data)
    return dataclasses.replace(reply, headers=headers)


def with_cost_chunk(chunk: str, charge: Charge) -> str:
    """An SSE chunk; the one carrying `usage` gets the cost added."""
    if '"usage"' not in chunk or not chunk.startswith("data: {"):
        return chunk
    data = json.loads(chunk[len("data: ") :])
    if not isinstance(data.get("usage"), dict):
        return chunk
    _stamp(data["usage"], charge)
    return "data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n\n"
