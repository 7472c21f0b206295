"""The drift stage in the gateway: every request's signals reach the replica's detector; once the baseline is
complete the gauges appear, `/admin/drift` reports each signal, and a shifted mix raises the alarm."""

from __future__ import annotations

import re

from tests.unit.gateway_stack import StackFactory

ADMIN = {"authorization": "Bearer admin-secret-0123456789"}


async def test_the_drift_stage_reports_and_alarms(make_stack: StackFactory) -> None:
    stack = await make_stack(
        admin_key="admin-secret-0123456789",
        drift={"baseline_size": 20, "window": 10, "check_every": 5, "patience": 1},
    )
    assert stack.service.stage_names[0] == "drift"
    for i in range(20):  # the baseline: short questions, answered by the small tier
        assert (await stack.chat(content=f"What is {i} plus {i}?", model="small")).status_code == 200
    early = (await stack.client.get("/admin/drift", headers=ADMIN)).json()
    assert early["ready"] and early["seen"] == 20
    for i in range(20):  # the mix moves: every request now pinned to the large tier
        assert (await stack.chat(content=f"What is {i} plus {i}?", model="large")).status_code == 200
    report = (await stack.client.get("/admin/drift", headers=ADMIN)).json()
    assert report["signals"]["share_large"]["alarm"] and report["signals"]["share_large"]["since"]
    assert report["signals"]["share_large"]["window_mean"] == 1.0
    scraped = (await stack.client.get("/metrics")).text
    assert re.search(r'tierserve_drift_alarm\{[^}]*signal="share_large"[^}]*\} 1\.0', scraped)
    assert (await stack.client.get("/admin/drift")).status_code == 401
