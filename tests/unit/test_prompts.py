"""Versioned system prompts: created and approved through the admin API (real Redis), served only once approved,
part of the cache key and of the audit record."""

from __future__ import annotations

import json
from pathlib import Path

from serving.audit import AuditConfig, AuditLog, read_records
from tests.unit.gateway_stack import ALPHA, StackFactory

ADMIN = {"authorization": "Bearer admin-secret"}


async def test_only_an_approved_version_serves_and_it_is_the_first_system_message(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = await make_stack(admin_key="admin-secret", audit=AuditLog(AuditConfig(), tmp_path, "gateway-test"))
    created = await stack.client.post(
        "/admin/prompts", json={"name": "support", "template": "You are a polite support agent."}, headers=ADMIN
    )
    assert created.status_code == 201 and created.json()["version"] == 1 and not created.json()["approved"]
    with_prompt = {**ALPHA, "x-tierserve-prompt": "support@1"}
    refused = await stack.chat(headers=with_prompt)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "prompt_not_approved"
    assert (await stack.chat(headers={**ALPHA, "x-tierserve-prompt": "support"})).status_code == 404  # none approved
    approved = await stack.client.post("/admin/prompts/support/1/approve", headers=ADMIN)
    assert approved.status_code == 200 and approved.json()["approved"]
    served = await stack.chat(headers=with_prompt)
    assert served.status_code == 200 and served.headers["x-tierserve-prompt-version"] == "support@1"
    sent = stack.small.payloads[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are a polite support agent."} and sent[1]["role"] == "user"
    # `name` alone is its newest approved version; a second version is another cache key.
    await stack.client.post("/admin/prompts", json={"name": "support", "template": "You are terse."}, headers=ADMIN)
    await stack.client.post("/admin/prompts/support/2/approve", headers=ADMIN)
    newest = await stack.chat(headers={**ALPHA, "x-tierserve-prompt": "support"})
    assert newest.headers["x-tierserve-prompt-version"] == "support@2"
    assert newest.headers["x-tierserve-cache"] == "miss"
    assert (await stack.chat(headers=with_prompt)).headers["x-tierserve-cache"] == "hit"  # v1's own answer
    requests = [r for r in read_records(tmp_path) if r["kind"] == "request" and r["status"] == 200]
    assert [r["prompt_version"] for r in requests] == ["support@1", "support@2", "support@1"]
    approvals = [r for r in read_records(tmp_path) if r["kind"] == "admin" and r["path"].endswith("/approve")]
    assert len(approvals) == 2  # every approval is audited


async def test_the_body_field_selects_a_prompt_like_the_header(make_stack: StackFactory) -> None:
    """The openai client's `extra_body={"tierserve_prompt": ...}`: served as the header would be, the field never
    reaches the tier, and both ways share the cache key; the two naming different prompts is a 400."""
    stack = await make_stack(admin_key="admin-secret")
    await stack.client.post("/admin/prompts", json={"name": "faq", "template": "Answer briefly."}, headers=ADMIN)
    await stack.client.post("/admin/prompts/faq/1/approve", headers=ADMIN)
    served = await stack.chat(tierserve_prompt="faq@1")
    assert served.status_code == 200 and served.headers["x-tierserve-prompt-version"] == "faq@1"
    sent = stack.small.payloads[-1]
    assert "tierserve_prompt" not in sent and sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
    by_header = await stack.chat(headers={**ALPHA, "x-tierserve-prompt": "faq@1"})
    assert by_header.headers["x-tierserve-cache"] == "hit"
    both = await stack.chat(headers={**ALPHA, "x-tierserve-prompt": "faq"}, tierserve_prompt="faq@1")
    assert both.status_code == 400 and both.json()["error"]["param"] == "tierserve_prompt"
    same = await stack.chat(headers={**ALPHA, "x-tierserve-prompt": "faq@1"}, tierserve_prompt="faq@1")
    assert same.status_code == 200
    unknown = await stack.chat(tierserve_prompt="faq@9")
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "tierserve_prompt"  # what was sent
    wrong_type = await stack.chat(tierserve_prompt=7)
    assert wrong_type.status_code in (400, 422) and wrong_type.json()["error"]["param"] == "tierserve_prompt"
    completion = await stack.client.post(
        "/v1/completions", json={"model": "small", "prompt": "hi", "tierserve_prompt": "faq@1"}, headers=ALPHA
    )
    assert completion.status_code == 400 and completion.json()["error"]["param"] == "tierserve_prompt"


async def test_diff_show_list_and_clear_errors(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key="admin-secret")
    for template in ("Line one.\nLine two.\n", "Line one.\nLine 2.\n"):
        await stack.client.post("/admin/prompts", json={"name": "faq", "template": template}, headers=ADMIN)
    changed = (await stack.client.get("/admin/prompts/faq/diff?old=1&new=2", headers=ADMIN)).json()
    assert "-Line two." in changed["diff"] and "+Line 2." in changed["diff"] and changed["from"] == "faq@1"
    listed = (await stack.client.get("/admin/prompts", headers=ADMIN)).json()["data"]
    assert listed == [{"name": "faq", "versions": 2, "approved": []}]
    shown = (await stack.client.get("/admin/prompts/faq", headers=ADMIN)).json()
    assert [v["version"] for v in shown["versions"]] == [1, 2] and len(shown["versions"][0]["sha256"]) == 64
    assert (await stack.client.get("/admin/prompts/faq/9", headers=ADMIN)).status_code == 404
    bad = await stack.chat(headers={**ALPHA, "x-tierserve-prompt": "faq@zero"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-tierserve-prompt"
    completion = await stack.client.post(
        "/v1/completions",
        json={"model": "small", "prompt": "hi"},
        headers={**ALPHA, "x-tierserve-prompt": "faq@1"},
    )
    assert completion.status_code == 400
    assert (
        await stack.client.post("/admin/prompts", json={"name": "x y", "template": "t"}, headers=ADMIN)
    ).status_code == 400
    assert (await stack.client.get("/admin/prompts", headers=ALPHA)).status_code == 401
    assert json.loads((await stack.client.get("/admin/prompts/faq/1", headers=ADMIN)).text)["template"].startswith(
        "Line"
    )


async def test_a_path_or_query_parameter_of_the_wrong_type_is_an_openai_error(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key="admin-secret")
    for path, param in (("/admin/prompts/faq/abc", "version"), ("/admin/prompts/faq/diff?old=x&new=1", "old")):
        response = await stack.client.get(path, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert (
            response.json()["error"]["param"] == param and response.json()["error"]["type"] == "invalid_request_error"
        )
