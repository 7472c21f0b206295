"""The chaos run's reckoning: every request accounted for, and the ones lost after a 200 told apart."""

from __future__ import annotations

from loadtest.chaos import reckon
from loadtest.records import RequestRecord


def record(start: float, status: int, ok: bool, error: str | None = None) -> RequestRecord:
    return RequestRecord(start=start, e2e_s=1.0, status=status, ok=ok, error=error, tier="small")


def test_every_request_is_answered_or_failed_by_kind() -> None:
    records = [
        record(1, 200, True),
        record(2, 200, False, 'inband: {"message": "tier died"}'),  # cut mid-stream by the kill at 5
        record(6, 200, True),
        record(7, 503, False, '503: {"error": {"code": "overloaded"}}'),
        record(8, 0, False, "connection: ConnectError: refused"),
    ]
    result = reckon(records, killed_at=5)
    assert result["reconciled"] and (result["sent"], result["answered"], result["failed"]) == (5, 2, 3)
    assert result["failed_by_kind"] == {"lost after 200 inband": 1, "503": 1, "no response connection": 1}
    assert result["lost_after_acknowledgement"] == 1
    assert result["shed"] == 1
    assert (result["sent_after_kill"], result["failed_sent_after_kill"]) == (3, 2)
    assert result["answered_by_tier"] == {"small": 2}
