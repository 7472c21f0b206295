"""Versioned prompts through the admin API (what `tierserve prompts` calls): create a version, list, show, diff,
approve. Every call needs the admin key, and the audit log records each one (serving.admin_audit)."""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from serving.admin import Parse
from serving.errors import InvalidRequest, NotFound
from serving.gateway import GatewayService
from serving.prompts import PromptError, PromptStore, PromptVersion, diff, parse_ref


class PromptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    template: str = Field(min_length=1, max_length=100_000)
    description: str = Field(default="", max_length=1000)


def install_prompt_routes(app: FastAPI, service: GatewayService, parse: Parse) -> None:
    def store(request: Request) -> PromptStore:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.prompts is None:
            raise InvalidRequest("This gateway has no Redis, so no prompt store.", code="prompts_unavailable")
        return service.prompts

    async def one(prompts: PromptStore, name: str, version: int) -> PromptVersion:
        try:
            parse_ref(f"{name}@{version}")
        except PromptError as error:
            raise InvalidRequest(str(error), param="name") from None
        prompt = await prompts.get(name, version)
        if prompt is None:
            raise NotFound(f"There is no prompt {name}@{version}.", code="prompt_not_found")
        return prompt

    @app.post("/admin/prompts")
    async def create_prompt(request: Request) -> JSONResponse:
        prompts = store(request)
        body = cast(PromptCreate, await parse(request, PromptCreate))
        try:
            prompt = await prompts.create(body.name, body.template, body.description)
        except PromptError as error:
            raise InvalidRequest(str(error), param="name") from None
        return JSONResponse(prompt.model_dump(mode="json"), status_code=201)

    @app.get("/admin/prompts")
    async def list_prompts(request: Request) -> dict[str, Any]:
        prompts = store(request)
        rows = []
        for name in await prompts.names():
            versions = await prompts.versions(name)
            approved = [p.version for p in versions if p.approved]
            rows.append({"name": name, "versions": len(versions), "approved": approved})
        return {"data": rows}

    @app.get("/admin/prompts/{name}")
    async def show_prompt(request: Request, name: str) -> dict[str, Any]:
        versions = await store(request).versions(name)
        if not versions:
            raise NotFound(f"There is no prompt '{name}'.", code="prompt_not_found")
        return {"name": name, "versions": [p.model_dump(mode="json") for p in versions]}

    @app.get("/admin/prompts/{name}/diff")
    async def diff_prompt(request: Request, name: str, old: int, new: int) -> dict[str, Any]:
        prompts = store(request)
        before, after = await one(prompts, name, old), await one(prompts, name, new)
        return {"from": before.ref, "to": after.ref, "diff": diff(before, after)}

    @app.get("/admin/prompts/{name}/{version}")
    async def show_version(request: Request, name: str, version: int) -> dict[str, Any]:
        return (await one(store(request), name, version)).model_dump(mode="json")

    @app.post("/admin/prompts/{name}/{version}/approve")
    async def approve_prompt(request: Request, name: str, version: int) -> dict[str, Any]:
        prompts = store(request)
        await one(prompts, name, version)
        return (await prompts.approve(name, version)).model_dump(mode="json")
