"""The audit log shipped to a real PostgreSQL server (started here): every record lands once and in order, a
writer restarted mid-way resumes without gaps or duplicates, records written while PostgreSQL was down arrive
when it is back, and `verify` on the table catches an edited, a removed and a reordered row."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.audit import AuditConfig, AuditLog, now_iso
from serving.audit.postgres import pg_records, pg_verify
from tests.pg_server import available, postgres_server

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL is not installed (apt-get install postgresql)")


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def _config(table: str) -> AuditConfig:
    return AuditConfig(fsync=False, postgres_table=table, ship_interval_s=0.1)


async def _write(log: AuditLog, tenant: str, count: int, start: int = 0) -> None:
    records = [{"kind": "request", "time": now_iso(), "tenant": tenant, "n": start + i} for i in range(count)]
    await asyncio.gather(*(log.append(record) for record in records))


async def test_records_ship_once_in_order_and_a_restarted_writer_resumes(dsn: str, tmp_path: Path) -> None:
    log = AuditLog(_config("ship_once"), tmp_path, "gateway-a", dsn)
    await _write(log, "acme", 120)
    await log.close()
    again = AuditLog(_config("ship_once"), tmp_path, "gateway-a", dsn)  # the same writer, restarted
    await _write(again, "globex", 30, start=120)
    await again.close()
    other = AuditLog(_config("ship_once"), tmp_path, "gateway-b", dsn)
    await _write(other, "acme", 5)
    await other.close()
    records = list(pg_records(dsn, "ship_once"))
    assert len(records) == 155
    mine = [r for r in records if r.get("seq") and r["tenant"] in ("acme", "globex") and r.get("n") is not None]
    assert [r["seq"] for r in records[:150]] == list(range(1, 151))  # writer a, in chain order
    assert sorted(r["n"] for r in mine if r["tenant"] == "globex") == list(range(120, 150))
    assert len(list(pg_records(dsn, "ship_once", tenant="globex"))) == 30
    verdict = pg_verify(dsn, "ship_once")
    assert verdict.ok and verdict.writers == 2 and verdict.records == 155, verdict.problems


async def test_records_written_while_postgres_is_away_arrive_later(dsn: str, tmp_path: Path) -> None:
    nowhere = "postgresql://tierserve@127.0.0.1:9/postgres?connect_timeout=1"  # nothing listens on port 9
    log = AuditLog(_config("catch_up"), tmp_path, "gateway-c", nowhere)
    await _write(log, "acme", 20)  # answered: on disk, not yet shipped
    assert log.shipper is not None and log.shipper.lag == 20
    await log.close()
    back = AuditLog(_config("catch_up"), tmp_path, "gateway-c", dsn)
    await _write(back, "acme", 1)
    await back.close()
    assert [r["seq"] for r in pg_records(dsn, "catch_up")] == list(range(1, 22))


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
async def test_verify_on_the_table_catches_tampering(dsn: str, tmp_path: Path, tamper: str) -> None:
    import psycopg

    table = f"tamper_{tamper}"
    log = AuditLog(_config(table), tmp_path, "gateway-t", dsn)
    await _write(log, "acme", 10)
    await log.close()
    assert pg_verify(dsn, table).ok
    with psycopg.connect(dsn, autocommit=True) as conn:
        if tamper == "edit":
            conn.execute(f"UPDATE {table} SET line = replace(line, '\"n\":4', '\"n\":40') WHERE seq = 5")
        elif tamper == "delete":
            conn.execute(f"DELETE FROM {table} WHERE seq = 6")
        else:
            conn.execute(f"UPDATE {table} SET seq = -seq WHERE seq IN (3, 4)")
            conn.execute(f"UPDATE {table} SET seq = CASE seq WHEN -3 THEN 4 ELSE 3 END WHERE seq IN (-3, -4)")
    verdict = pg_verify(dsn, table)
    assert not verdict.ok, tamper


async def test_the_audit_command_verifies_and_exports_from_postgres(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from commands.main import app

    log = AuditLog(_config("tierserve_audit"), tmp_path, "gateway-cli", dsn)
    await _write(log, "acme", 3)
    await _write(log, "initech", 2)
    await log.close()
    monkeypatch.setenv("TIERSERVE_AUDIT_DSN", dsn)
    runner = CliRunner()
    verified = runner.invoke(app, ["audit", "verify", "--postgres"])
    assert verified.exit_code == 0 and '"ok": true' in verified.stdout
    exported = runner.invoke(app, ["audit", "export", "--postgres", "--tenant", "initech", "--since", "1h"])
    assert exported.exit_code == 0 and len(exported.stdout.splitlines()) == 2
