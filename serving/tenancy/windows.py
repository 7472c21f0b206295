"""The arithmetic of limits and budgets, in plain Python: the Lua scripts in `serving.tenancy.scripts` do the same
sums inside Redis (atomically, across every gateway replica), and the tests hold the two to each other.

Rate windows are sliding windows of `buckets` sub-windows: the count is every bucket wholly inside the last
`window_ms`, plus the share of the oldest, partly expired bucket still inside it. Money is integer micro-dollars,
so a reservation and its settlement never drift by float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

MICRO = 1_000_000  # micro-dollars per dollar
BudgetWindow = Literal["day", "month"]


def to_micro(usd: float) -> int:
    return int(round(usd * MICRO))


def to_usd(micro: int) -> float:
    return micro / MICRO


@dataclass(frozen=True)
class Window:
    """A sliding window of `window_ms` made of `buckets` buckets."""

    window_ms: int = 60_000
    buckets: int = 12

    @property
    def width_ms(self) -> int:
        return self.window_ms // self.buckets

    def bucket(self, now_ms: int) -> int:
        return now_ms // self.width_ms

    def used(self, counts: dict[int, int], now_ms: int) -> float:
        """What the window holds at `now_ms`: whole buckets, plus the live share of the one sliding out."""
        current = self.bucket(now_ms)
        oldest = current - self.buckets
        elapsed = (now_ms - current * self.width_ms) / self.width_ms
        total = 0.0
        for index, count in counts.items():
            if index > oldest:
                total += count
            elif index == oldest:
                total += count * (1.0 - elapsed)
        return total

    def admits(self, counts: dict[int, int], now_ms: int, cost: int, limit: int) -> bool:
        return self.used(counts, now_ms) + cost <= limit

    def reset_ms(self, counts: dict[int, int], now_ms: int) -> int:
        """Until the window is empty again (OpenAI's `x-ratelimit-reset-*`): the newest bucket's end plus a window."""
        live = [index for index, count in counts.items() if count > 0 and index >= self.bucket(now_ms) - self.buckets]
        if not live:
            return 0
        return max(0, (max(live) + 1) * self.width_ms + self.window_ms - now_ms)

    def retry_ms(self, counts: dict[int, int], now_ms: int) -> int:
        """Until the oldest counted bucket has slid out, the soonest the window can hold more (at least 1 s)."""
        live = [index for index, count in counts.items() if count > 0 and index >= self.bucket(now_ms) - self.buckets]
        if not live:
            return 1000
        return max(1000, (min(live) + 1) * self.width_ms + self.window_ms - now_ms)


def openai_duration(ms: int) -> str:
    """A reset time as OpenAI writes it: `1s`, `6m0s`, `1h2m3s`, `250ms`."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    seconds = math.ceil(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def budget_period(window: BudgetWindow, now: datetime) -> tuple[str, datetime]:
    """The budget period `now` falls in (its Redis key part) and when it ends, in UTC calendar terms."""
    now = now.astimezone(UTC)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return f"d{start:%Y%m%d}", start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    )
    return f"m{start:%Y%m}", following


def token_cost_micro(prompt_tokens: int, completion_tokens: int, prompt_per_1k: float, completion_per_1k: float) -> int:
    """Tokens at a tier's prices, rounded up to the micro-dollar (a reservation must never undercount)."""
    usd = prompt_tokens * prompt_per_1k / 1000 + completion_tokens * completion_per_1k / 1000
    return math.ceil(usd * MICRO - 1e-9)


def prompt_token_bound(text_bytes: int, messages: int) -> int:
    """An upper bound of the prompt's tokens before any tokenizer ran: byte-level BPE never makes more tokens than
    bytes, plus the chat template's tokens per message (role markers, separators)."""
    return text_bytes + 16 * max(messages, 1)


def prompt_token_estimate(text_bytes: int, messages: int) -> int:
    """The usual count (about four bytes a token in English), charged to tokens/min at admission and corrected with
    the tier's real count when the answer ends."""
    return max(1, math.ceil(text_bytes / 4) + 4 * max(messages, 1))


@dataclass
class Reservations:
    """A budget's ledger in one period: settled spend plus open reservations (what the Lua script keeps)."""

    limit: int
    spent: int = 0
    open: dict[str, int] | None = None

    def reserve(self, request_id: str, amount: int) -> bool:
        held = self.open if self.open is not None else {}
        if self.spent + sum(held.values()) + amount > self.limit:
            return False
        held[request_id] = amount
        self.open = held
        return True

    def settle(self, request_id: str, actual: int) -> None:
        if self.open is not None:
            self.open.pop(request_id, None)
        self.spent += actual
