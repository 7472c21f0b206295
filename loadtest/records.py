"""One line per request: what a user measured, written by the Locust users and read by everything after.

The aggregation, the SLO verdict and the report are pure functions over these records, so they can be
tested on recorded runs and they work the same for one process and for a distributed run (workers ship
their records to the master, which writes the one file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["RecordWriter", "RequestRecord", "read_records"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What one request felt like from the client's side. Times are seconds; `start` is epoch seconds."""

    start: float
    e2e_s: float
    status: int  # HTTP status; 0 when no response came (connection refused, timeout)
    ok: bool
    scenario: str = ""
    name: str = ""  # the request's label in Locust's statistics ("chat stream", "chat")
    stream: bool = False
    ttft_s: float | None = None  # first chunk that carries content (streams only)
    itl_s: tuple[float, ...] = field(default_factory=tuple)  # gaps between content chunks
    output_tokens: int = 0
    prompt_tokens: int = 0
    tier: str = "unknown"  # x-tierserve-tier
    cache: str = "unknown"  # x-tierserve-cache: hit / miss / bypass
    route_score: float | None = None
    error: str | None = None  # "429: ...", "inband: ...", "connection: ..."
    users: int = 0  # users running in this process when the request started
    worker: str = ""
    retry_after_s: float | None = None  # Retry-After of a refused request
    attempts: int = 1  # sends it took (--client-retries)
    request_id: str | None = None  # x-request-id of the (last) response: the stack's logs, traces and audit use it

    @property
    def end(self) -> float:
        return self.start + self.e2e_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first (DistServe's TPOT); None without a stream or a second token."""
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        return max(0.0, self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def error_kind(self) -> str:
        """Errors grouped the way an operator reads them: the HTTP status, `inband` or `connection`."""
        if self.ok:
            return ""
        if self.status == 0:
            return "connection"
        if self.status == 200:
            return "inband"
        return str(self.status)

    def to_json(self) -> str:
        data = asdict(self)
        data["itl_s"] = [round(gap, 6) for gap in self.itl_s]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["itl_s"] = tuple(float(gap) for gap in known.get("itl_s") or ())
        record = cls(**known)
        if not math.isfinite(record.start) or record.e2e_s < 0:
            raise ValueError(f"bad record times: start={record.start} e2e_s={record.e2e_s}")
        return record


def _parse(lines: Iterable[str], where: str) -> Iterator[RequestRecord]:
    pending: str | None = None
    for number, line in enumerate(lines, 1):
        if pending is not None:  # a bad line followed by more lines is corruption, not a cut-off last line
            raise ValueError(f"{where}:{number - 1}: not a request record: {pending[:120]!r}")
        text = line.strip()
        if not text:
            continue
        try:
            yield RequestRecord.from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError):
            pending = text
    # A process killed mid-write leaves a truncated last line: that one request is dropped, not the run.


def read_records(paths: Path | Iterable[Path]) -> list[RequestRecord]:
    """Every record of one or more JSONL files (a distributed run may leave one per worker), by start time."""
    records: list[RequestRecord] = []
    for path in [paths] if isinstance(paths, Path) else paths:
        with path.open(encoding="utf-8") as lines:
            records.extend(_parse(lines, str(path)))
    records.sort(key=lambda r: r.start)
    return records


class RecordWriter:
    """Appends records as JSON lines; flushed per batch so a crash loses at most the unflushed tail."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def write(self, records: Iterable[RequestRecord]) -> int:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        count = 0
        for record in records:
            self._file.write(record.to_json() + "\n")
            count += 1
        self._file.flush()
        return count

    def write_raw(self, lines: Iterable[str]) -> int:
        """Lines a worker already serialised (validated before they are trusted)."""
        return self.write(RequestRecord.from_dict(json.loads(line)) for line in lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
