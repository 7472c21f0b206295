"""The audit log's writer: records are appended to the replica's current segment in batches, and each batch is
fsynced before the requests in it are answered (group commit: one fsync covers every request that ended while the
previous one ran). A crash can only lose records of requests that were never acknowledged."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from serving.audit.chain import GENESIS, read_lines, seal, segment_lines, segments
from serving.audit.config import AuditConfig
from serving.audit.postgres import AuditShipper

logger = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, config: AuditConfig, root: Path, writer: str, postgres_dsn: str | None = None) -> None:
        self._config = config
        self.root = root
        self._folder = root / writer
        self._folder.mkdir(parents=True, exist_ok=True)
        self._seq, self._prev = self._resume()
        # Beyond one machine: the records also go to PostgreSQL, shipped from these files (serving.audit.postgres).
        self.shipper = (
            AuditShipper(postgres_dsn, self._folder, config.postgres_table, config.ship_interval_s)
            if postgres_dsn
            else None
        )
        self._segment: TextIO | None = None
        self._segment_bytes = 0
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _resume(self) -> tuple[int, str]:
        """Go on from the last whole record of this writer's folder (a restarted writer with the same name)."""
        last: dict[str, Any] | None = None
        for _, _, line in read_lines(self._folder):
            try:
                last = json.loads(line)
            except ValueError:
                continue  # a torn last line: never acknowledged
        if last is None:
            return 0, GENESIS
        return int(last["seq"]), str(last["hash"])

    async def append(self, record: dict[str, Any]) -> None:
        """Returns once the record is on disk (fsynced, unless `fsync` is off)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.shipper is not None and not self.shipper.started:
            self.shipper.start()
        self._pending.append((record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, [record for record, _ in batch])
            except Exception as error:  # a record that cannot be written fails its request's audit, loudly
                logger.exception("audit write failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            if self.shipper is not None:
                self.shipper.notify(self._seq)

    def _write(self, records: list[dict[str, Any]]) -> None:
        segment, retention = self._current_segment()
        lines = []
        for record in [*retention, *records]:
            self._seq += 1
            sealed = seal(record, self._seq, self._prev)
            self._prev = sealed["hash"]
            lines.append(json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
        data = "".join(lines)
        segment.write(data)
        segment.flush()
        if self._config.fsync:
            os.fsync(segment.fileno())
        self._segment_bytes += len(data.encode())

    def _current_segment(self) -> tuple[TextIO, list[dict[str, Any]]]:
        """The segment to append to, a new one when the current one is full; and the `retention` record to write
        first when closing it deleted old segments."""
        if self._segment is not None and self._segment_bytes < self._config.segment_max_bytes:
            return self._segment, []
        retention: list[dict[str, Any]] = []
        if self._segment is not None:
            self._segment.close()
            retention = self._prune()
        path = self._folder / f"segment-{self._seq + 1}.jsonl"
        self._segment = path.open("a", encoding="utf-8")
        self._segment_bytes = path.stat().st_size
        if self._config.fsync:  # the new file's name must survive a crash too
            directory = os.open(self._folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return self._segment, retention

    def _prune(self) -> list[dict[str, Any]]:
        """Delete closed segments past retention, oldest first (never the last one: the chain goes on from it).
        A `retention` record in the chain then says which records went and how the kept chain links to them, so
        `audit verify` tells retention from tampering."""
        cutoff = time.time() - self._config.retention_days * 86_400
        pruned_through, pruned_hash = 0, ""
        for path in segments(self._folder)[:-1]:
            if path.stat().st_mtime >= cutoff:
                break
            for _, _, line in segment_lines(path):
                try:
                    record = json.loads(line)
                    pruned_through, pruned_hash = int(record["seq"]), str(record["hash"])
                except (ValueError, KeyError, TypeError):
                    continue
            path.unlink()
        if not pruned_through:
            return []
        return [
            {
                "kind": "retention",
                "time": now_iso(),
                "pruned_through_seq": pruned_through,
                "pruned_last_hash": pruned_hash,
            }
        ]

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        if self.shipper is not None:
            await self.shipper.close()
        if self._segment is not None:
            self._segment.close()
            self._segment = None


def iso(moment: datetime) -> str:
    """The audit log's time format: UTC to the millisecond, with a Z (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))
