"""The spend ledger: one Redis stream entry per finished request (written with its settlement, atomically), read
back for `tierserve cost report` and `/admin/cost`."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel

from serving.tenancy.windows import to_usd

GroupBy = Literal["tenant", "key", "tier", "model", "day"]
_SPAN = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_span(text: str) -> int:
    """`30m`, `24h`, `7d` -> seconds."""
    match = _SPAN.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a time span like 30m, 24h or 7d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


class LedgerEntry(BaseModel):
    at: float  # unix seconds (the stream id's time)
    request_id: str
    tenant: str
    key_id: str
    model: str
    tier: str
    cache: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    cost_micro: int
    saved_cache_micro: int
    saved_routing_micro: int
    metered: int


class ReportRow(BaseModel):
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    saved_by_cache_usd: float
    saved_by_routing_usd: float


class CostReport(BaseModel):
    since: float
    until: float
    by: str
    rows: list[ReportRow]
    total: ReportRow


async def read_ledger(
    client: aioredis.Redis, prefix: str, since_s: float, until_s: float | None = None
) -> list[LedgerEntry]:
    stream = f"{prefix}:ledger"
    start = f"{int(since_s * 1000)}-0"
    end = f"{int(until_s * 1000)}-0" if until_s is not None else "+"
    entries: list[LedgerEntry] = []
    while True:
        page = await client.xrange(stream, min=start, max=end, count=5000) or []
        for entry_id, fields in page:
            raw = {_text(k): _text(v) for k, v in (fields or {}).items()}
            ident = _text(entry_id)
            entries.append(LedgerEntry.model_validate({**raw, "at": int(ident.split("-")[0]) / 1000}))
        if len(page) < 5000:
            return entries
        last = _text(page[-1][0])
        start = "(" + last


def _group(entry: LedgerEntry, by: GroupBy) -> str:
    if by == "day":
        return datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%d")
    if by == "key":
        return entry.key_id
    return str(getattr(entry, by))


def summarize(entries: list[LedgerEntry], by: GroupBy, since: float, until: float | None = None) -> CostReport:
    sums: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for entry in entries:
        row = sums[_group(entry, by)]
        for i, value in enumerate(
            (
                1,
                entry.prompt_tokens,
                entry.completion_tokens,
                entry.cost_micro,
                entry.saved_cache_micro,
                entry.saved_routing_micro,
            )
        ):
            row[i] += value

    def as_row(group: str, values: list[int]) -> ReportRow:
        return ReportRow(
            group=group,
            requests=values[0],
            prompt_tokens=values[1],
            completion_tokens=values[2],
            cost_usd=to_usd(values[3]),
            saved_by_cache_usd=to_usd(values[4]),
            saved_by_routing_usd=to_usd(values[5]),
        )

    rows = [as_row(group, values) for group, values in sorted(sums.items(), key=lambda item: -item[1][3])]
    total = [sum(values[i] for values in sums.values()) for i in range(6)]
    return CostReport(since=since, until=until or time.time(), by=by, rows=rows, total=as_row("total", total))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
