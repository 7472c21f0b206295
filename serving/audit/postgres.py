"""The audit log beyond one machine: every gateway replica ships its sealed records into one PostgreSQL table.

The local segment files stay the write-ahead log (a request is answered once its record is fsynced there); a
shipper per writer then copies the records to PostgreSQL in chain order, at least once: the row key is
(writer, seq), so a record shipped twice (a crash between the insert and the next look) lands once. Each row
keeps the exact sealed line, which is what `verify` hashes, and the record as jsonb for queries. A shipper that
cannot reach PostgreSQL keeps the records on disk and catches up when it can; `lag` says how far behind it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serving.audit.chain import Verdict, read_lines, verify_chain

logger = logging.getLogger(__name__)

__all__ = ["AuditShipper", "pg_records", "pg_verify"]

_BATCH = 500
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _table(name: str) -> str:
    if not _TABLE.match(name):
        raise ValueError(f"audit table name {name!r}: lower-case letters, digits and _ only")
    return name


def _schema(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (writer text NOT NULL, seq bigint NOT NULL, hash text NOT NULL, "
        "time text, kind text, tenant text, line text NOT NULL, record jsonb NOT NULL, PRIMARY KEY (writer, seq))"
    )


class AuditShipper:
    """Copies one writer's records (its folder of segments) into `table`, in order."""

    def __init__(self, dsn: str, folder: Path, table: str = "tierserve_audit", interval_s: float = 1.0) -> None:
        self._dsn = dsn
        self._folder = folder
        self._writer = folder.name
        self._table = _table(table)
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.shipped_seq = 0  # the last seq known to be in PostgreSQL
        self.written_seq = 0  # the last seq written locally (set by the writer)

    @property
    def lag(self) -> int:
        return max(0, self.written_seq - self.shipped_seq)

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def notify(self, seq: int) -> None:
        self.written_seq = seq
        self._wake.set()

    async def close(self, drain_s: float = 5.0) -> None:
        """Ship what is left (for up to `drain_s`), then stop."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(drain_s):
                while self.lag:
                    self._wake.set()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            logger.warning("audit shipper for %s stopped %d records behind", self._writer, self.lag)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        import psycopg

        backoff = self._interval_s
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(_schema(self._table))
                    cursor = await conn.execute(
                        f"SELECT coalesce(max(seq), 0) FROM {self._table} WHERE writer = %s", (self._writer,)
                    )
                    row = await cursor.fetchone()
                    self.shipped_seq = int(row[0]) if row else 0
                    backoff = self._interval_s
                    while True:
                        await self._ship(conn)
                        self._wake.clear()
                        try:
                            async with asyncio.timeout(self._interval_s):
                                await self._wake.wait()
                        except TimeoutError:
                            pass
            except asyncio.CancelledError:
                raise
            except Exception as error:  # PostgreSQL away: the records wait on disk
                logger.warning("audit shipping to PostgreSQL failed (%r); retrying in %.0fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _ship(self, conn: Any) -> None:
        rows = await asyncio.to_thread(self._unshipped)
        for start in range(0, len(rows), _BATCH):
            batch = rows[start : start + _BATCH]
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(
                    f"INSERT INTO {self._table} (writer, seq, hash, time, kind, tenant, line, record) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (writer, seq) DO NOTHING",
                    batch,
                )
            self.shipped_seq = max(self.shipped_seq, int(batch[-1][1]))
        self.written_seq = max(self.written_seq, self.shipped_seq)

    def _unshipped(self) -> list[tuple[Any, ...]]:
        rows = []
        for _, _, line in read_lines(self._folder):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line: never acknowledged, never shipped
            seq = int(record.get("seq", 0))
            if seq <= self.shipped_seq:
                continue
            values = (record.get("time"), record.get("kind"), record.get("tenant"), line.rstrip("\n"), line)
            rows.append((self._writer, seq, record.get("hash"), *values))
        return rows


def _connect(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


def pg_records(dsn: str, table: str = "tierserve_audit", *, since: str | None = None, tenant: str | None = None,
               kind: str | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The shipped records, oldest first within each writer (filters as `tierserve audit export` has them)."""
    clauses, params = [], []
    for column, value in (("tenant", tenant), ("kind", kind)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if since is not None:
        clauses.append("time >= %s")
        params.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with _connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT line FROM {_table(table)} {where} ORDER BY writer, seq", params)
        for (line,) in cursor:
            yield json.loads(line)


def pg_verify(dsn: str, table: str = "tierserve_audit") -> Verdict:
    """Every writer's chain as PostgreSQL holds it: the same checks as on the files."""
    verdict = Verdict()
    with _connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT writer, seq, line FROM {_table(table)} ORDER BY writer, seq")
        current: str | None = None
        lines: list[tuple[str, str]] = []
        for writer, seq, line in cursor:
            if writer != current and current is not None:
                verdict.writers += 1
                verify_chain(current, lines, verdict)
                lines = []
            current = writer
            lines.append((f"{writer}#{seq}", line + "\n"))
        if current is not None:
            verdict.writers += 1
            verify_chain(current, lines, verdict)
    return verdict
