"""The hash chain of the audit log. Every record carries `seq` (1, 2, ... per writer), `prev` (the previous
record's hash) and `hash` = sha256 over its canonical JSON (sorted keys, without `hash`), so editing, removing or
reordering any record breaks the chain at that point. Records are JSON lines in segment files
`<dir>/<writer>/segment-<first seq>.jsonl`, one writer (a gateway replica) per folder."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    body = {key: value for key, value in record.items() if key != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(record: dict[str, Any], seq: int, prev: str) -> dict[str, Any]:
    """The record with its place in the chain and its hash."""
    sealed = {**record, "seq": seq, "prev": prev}
    sealed["hash"] = hashlib.sha256(canonical(sealed)).hexdigest()
    return sealed


def segments(folder: Path) -> list[Path]:
    """A writer's segments in chain order."""
    return sorted(folder.glob("segment-*.jsonl"), key=lambda path: int(path.stem.split("-", 1)[1]))


def writers(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []


def segment_lines(path: Path) -> Iterator[tuple[Path, int, str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            yield path, number, line


def read_lines(folder: Path) -> Iterator[tuple[Path, int, str]]:
    for path in segments(folder):
        yield from segment_lines(path)


def read_records(root: Path) -> Iterator[dict[str, Any]]:
    """Every readable record of every writer (unordered across writers)."""
    for folder in writers(root):
        for _, _, line in read_lines(folder):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


@dataclass
class Verdict:
    writers: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)
    torn_tails: list[str] = field(default_factory=list)  # a last line cut by a crash mid-write (never acknowledged)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "writers": self.writers,
            "records": self.records,
            "problems": self.problems,
            "torn_tails": self.torn_tails,
        }


def verify(root: Path) -> Verdict:
    """Check every writer's chain: each record's hash, its link to the one before, and an unbroken `seq`. A chain
    may start after 1 only where a later `retention` record says which records were deleted, and how they ended."""
    verdict = Verdict()
    for folder in writers(root):
        verdict.writers += 1
        _verify_writer(folder, verdict)
    return verdict


def _verify_writer(folder: Path, verdict: Verdict) -> None:
    lines = [(f"{folder.name}/{path.name}:{number}", line) for path, number, line in read_lines(folder)]
    verify_chain(folder.name, lines, verdict)


def verify_chain(writer: str, lines: list[tuple[str, str]], verdict: Verdict) -> None:
    """One writer's chain from its lines in order, each with where it was read (a file and line, a table row)."""
    expected_seq: int | None = None
    prev = GENESIS
    first: dict[str, Any] | None = None
    retention_cuts: dict[int, str] = {}
    for index, (where, line) in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if index == len(lines) - 1 and not line.endswith("\n"):
                verdict.torn_tails.append(where)
            else:
                verdict.problems.append(f"{where}: not a JSON record (edited or corrupted)")
            continue
        verdict.records += 1
        seq = record.get("seq")
        if hashlib.sha256(canonical(record)).hexdigest() != record.get("hash"):
            verdict.problems.append(f"{where}: seq {seq}: its hash does not match its content (edited)")
        if first is None:
            first = record
        elif seq != expected_seq:
            verdict.problems.append(f"{where}: seq {seq} where {expected_seq} was due (a record removed or moved)")
        elif record.get("prev") != prev:
            verdict.problems.append(f"{where}: seq {seq} does not link to the record before it")
        if record.get("kind") == "retention":
            retention_cuts[int(record.get("pruned_through_seq", 0))] = str(record.get("pruned_last_hash", ""))
        expected_seq = (seq + 1) if isinstance(seq, int) else None
        prev = str(record.get("hash"))
    if first is not None and (first.get("seq") != 1 or first.get("prev") != GENESIS):
        start = first.get("seq")
        cut = retention_cuts.get(start - 1) if isinstance(start, int) else None
        if cut is None or cut != first.get("prev"):
            verdict.problems.append(
                f"{writer}: the chain starts at seq {start} and no retention record accounts for the records "
                "before it (deleted)"
            )
