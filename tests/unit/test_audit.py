"""The audit log: a hash chain per writer on real files, that `verify` checks record by record; and the gateway
writing one record per request and per admin call, before the response."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from serving.audit import AuditConfig, AuditLog, read_records, verify
from tests.unit.gateway_stack import ALPHA, BETA, StackFactory

ADMIN = {"authorization": "Bearer admin-secret"}


async def write(root: Path, count: int, **config: object) -> AuditLog:
    log = AuditLog(AuditConfig(**config), root, "gateway-a")  # type: ignore[arg-type]
    await asyncio.gather(*(log.append({"kind": "request", "request_id": f"r{i}", "tenant": "t"}) for i in range(count)))
    return log


def lines(root: Path) -> list[str]:
    return (root / "gateway-a" / "segment-1.jsonl").read_text().splitlines(keepends=True)


async def test_concurrent_appends_make_one_unbroken_chain(tmp_path: Path) -> None:
    log = await write(tmp_path, 50)
    await log.close()
    records = sorted(read_records(tmp_path), key=lambda r: r["seq"])
    assert [r["seq"] for r in records] == list(range(1, 51))
    assert {r["request_id"] for r in records} == {f"r{i}" for i in range(50)}
    assert all(b["prev"] == a["hash"] for a, b in zip(records, records[1:], strict=False))
    verdict = verify(tmp_path)
    assert verdict.ok and verdict.records == 50 and verdict.writers == 1


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "drop_first"])
async def test_verify_catches_every_single_record_edit_removal_and_reorder(tmp_path: Path, tamper: str) -> None:
    await (await write(tmp_path, 6)).close()
    text = lines(tmp_path)
    if tamper == "edit":
        record = json.loads(text[3])
        record["tenant"] = "someone-else"
        text[3] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    elif tamper == "delete":
        del text[2]
    elif tamper == "reorder":
        text[1], text[4] = text[4], text[1]
    else:
        del text[0]
    (tmp_path / "gateway-a" / "segment-1.jsonl").write_text("".join(text))
    verdict = verify(tmp_path)
    assert not verdict.ok, tamper
    assert verdict.problems


async def test_a_torn_last_line_is_reported_not_failed_and_a_restarted_writer_goes_on(tmp_path: Path) -> None:
    await (await write(tmp_path, 3)).close()
    with (tmp_path / "gateway-a" / "segment-1.jsonl").open("a") as handle:
        handle.write('{"kind": "request", "seq": 4, "tru')  # a crash mid-write: never acknowledged
    verdict = verify(tmp_path)
    assert verdict.ok and verdict.torn_tails
    again = AuditLog(AuditConfig(), tmp_path, "gateway-a")
    await again.append({"kind": "request", "request_id": "after-restart"})
    await again.close()
    assert max(r["seq"] for r in read_records(tmp_path)) == 4


async def test_retention_deletes_old_segments_and_the_chain_says_so(tmp_path: Path) -> None:
    log = AuditLog(AuditConfig(segment_max_bytes=4096, retention_days=1), tmp_path, "gateway-a")
    for i in range(60):  # ~150 bytes a record: several segments
        await log.append({"kind": "request", "request_id": f"r{i}", "padding": "x" * 60})
    folder = tmp_path / "gateway-a"
    old = sorted(folder.glob("segment-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))[:2]
    for path in old:  # two closed segments, aged past retention
        os.utime(path, (0, 0))
    for i in range(40):
        await log.append({"kind": "request", "request_id": f"s{i}", "padding": "x" * 60})
    await log.close()
    assert not any(path.exists() for path in old)
    retention = [r for r in read_records(tmp_path) if r["kind"] == "retention"]
    assert len(retention) == 1 and retention[0]["pruned_through_seq"] > 0
    assert verify(tmp_path).ok  # the cut is accounted for
    # ... whereas deleting the oldest remaining segment by hand is not.
    first = min(folder.glob("segment-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
    first.unlink()
    assert not verify(tmp_path).ok


async def test_the_gateway_records_requests_with_lineage_and_admin_calls(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    log = AuditLog(AuditConfig(), tmp_path, "gateway-test")
    stack = await make_stack(audit=log, admin_key="admin-secret")
    first = await stack.chat()
    again = await stack.chat()  # an identical repeat: replayed from the cache
    unknown = await stack.chat(model="no-such-model")
    assert (first.status_code, again.headers["x-tierserve-cache"], unknown.status_code) == (200, "hit", 404)
    exported = await stack.client.get("/admin/audit/export", headers=ADMIN)
    assert exported.status_code == 200
    records = [json.loads(line) for line in exported.text.splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    assert [r["status"] for r in requests] == [200, 200, 404]
    made, replayed, refused = requests
    assert made["tenant"] == "alpha" and made["key_id"] and "sk-alpha" not in json.dumps(records)
    assert made["tier"] == "small" and made["cache"] == "miss" and made["prompt_tokens"] == 9
    assert replayed["cache"] == "hit" and replayed["lineage"] == made["request_id"]
    assert replayed["answer_sha256"] == made["answer_sha256"] and made["prompt_sha256"]
    assert refused["error"] and refused["answered_by"] is None
    verified = (await stack.client.get("/admin/audit/verify", headers=ADMIN)).json()
    assert verified["ok"] and verified["records"] == 4  # three requests and the export call itself
    admin = [r for r in read_records(tmp_path) if r["kind"] == "admin"]
    assert [(r["path"], r["status"]) for r in admin] == [("/admin/audit/export", 200), ("/admin/audit/verify", 200)]
    # A tenant's own key reads its tenant's records and nothing else: scoped, never across tenants.
    own = await stack.client.get("/admin/audit/export", headers=ALPHA)
    assert own.status_code == 200 and {json.loads(line)["tenant"] for line in own.text.splitlines()} == {"alpha"}
    beta = await stack.client.get("/admin/audit/tail", params={"n": 50}, headers=BETA)
    assert beta.status_code == 200 and beta.text == ""
    across = await stack.client.get("/admin/audit/export", params={"tenant": "alpha"}, headers=BETA)
    assert across.status_code == 403 and across.json()["error"]["param"] == "tenant"
    assert (await stack.client.get("/admin/audit/verify", headers=ALPHA)).status_code == 401
    # Refused at the HTTP edge, before the pipeline: a wrong key, a body that is not JSON. One record each, and the
    # pipeline's own refusal above (404) was not written twice.
    wrong_key = await stack.chat(headers={"authorization": "Bearer sk-nope"})
    not_json = await stack.client.post("/v1/chat/completions", content=b"{nope", headers=ALPHA)
    assert (wrong_key.status_code, not_json.status_code) == (401, 400)
    refusals = [r for r in read_records(tmp_path) if r["kind"] == "refusal"]
    assert sorted(r["status"] for r in refusals) == [400, 401]
    assert sum(1 for r in read_records(tmp_path) if r.get("status") == 404) == 1
    assert verify(tmp_path).ok


async def test_the_audit_command_reads_and_checks_the_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from commands.main import app

    await (await write(tmp_path, 5)).close()
    runner = CliRunner()
    verified = runner.invoke(app, ["audit", "verify", "--dir", str(tmp_path)])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["records"] == 5
    exported = runner.invoke(app, ["audit", "export", "--dir", str(tmp_path), "--tenant", "t"])
    assert exported.exit_code == 0 and len(exported.stdout.splitlines()) == 5
    tail = runner.invoke(app, ["audit", "tail", "--dir", str(tmp_path), "-n", "2"])
    assert [json.loads(line)["seq"] for line in tail.stdout.splitlines()] == [4, 5]
    text = lines(tmp_path)
    del text[1]
    (tmp_path / "gateway-a" / "segment-1.jsonl").write_text("".join(text))
    broken = runner.invoke(app, ["audit", "verify", "--dir", str(tmp_path)])
    assert broken.exit_code == 1 and "seq 3 where 2 was due" in broken.stdout


async def test_requests_show_prints_one_requests_path_from_the_trail(make_stack: StackFactory, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from commands.main import app

    log = AuditLog(AuditConfig(fsync=False), tmp_path, "gateway-test")
    stack = await make_stack(audit=log)
    answered = await stack.chat(model="auto")
    request_id = answered.headers["x-request-id"]
    await log.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["requests", "show", request_id, "--dir", str(tmp_path), "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["route_score"] is not None and record["tier"] == answered.headers["x-tierserve-tier"]
    assert {"cache_lookup", "route"} <= set(record["stages_ms"]) and record["latency_ms"] > 0
    table = runner.invoke(app, ["requests", "tail", "--dir", str(tmp_path)])
    assert table.exit_code == 0 and request_id in table.stdout and "route" in table.stdout
    missing = runner.invoke(app, ["requests", "show", "nope", "--dir", str(tmp_path)])
    assert missing.exit_code == 1
