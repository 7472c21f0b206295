"""Versioned system prompts with approval, kept in Redis: a named template gets version 1, 2, ... as it is edited;
only an approved version serves, and approving needs the admin key (the admin API records who did it in the
audit log). A request selects one with `x-tierserve-prompt: name@version` (or `name`: its newest approved
version); the version is part of the cache key and of the request's audit record."""

from __future__ import annotations

import difflib
import hashlib
import re
import time

import redis.asyncio as aioredis
from pydantic import BaseModel

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class PromptVersion(BaseModel):
    name: str
    version: int
    template: str
    description: str = ""
    sha256: str
    created_at: float
    approved: bool = False
    approved_at: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class PromptError(ValueError):
    """A name, reference or version that is malformed or unknown (the message says which)."""


def parse_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.strip().partition("@")
    if not NAME.match(name):
        raise PromptError(f"prompt name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise PromptError(f"prompt version {version!r}: a positive number, as in {name}@3")
    return name, int(version)


class PromptStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:prompts"

    def _key(self, name: str, version: int) -> str:
        return f"{self._prefix}:{name}:v{version}"

    async def create(self, name: str, template: str, description: str = "") -> PromptVersion:
        parse_ref(name)
        if not template.strip():
            raise PromptError("a prompt template cannot be empty")
        version = int(await self._redis.incr(f"{self._prefix}:{name}:seq"))
        prompt = PromptVersion(
            name=name,
            version=version,
            template=template,
            description=description,
            sha256=hashlib.sha256(template.encode()).hexdigest(),
            created_at=time.time(),
        )
        await self._redis.set(self._key(name, version), prompt.model_dump_json())
        await self._redis.sadd(f"{self._prefix}:names", name)
        return prompt

    async def get(self, name: str, version: int) -> PromptVersion | None:
        raw = await self._redis.get(self._key(name, version))
        return PromptVersion.model_validate_json(raw) if raw is not None else None

    async def versions(self, name: str) -> list[PromptVersion]:
        last = int(await self._redis.get(f"{self._prefix}:{name}:seq") or 0)
        if last == 0:
            return []
        found = await self._redis.mget([self._key(name, version) for version in range(1, last + 1)])
        return [PromptVersion.model_validate_json(raw) for raw in found if raw is not None]

    async def names(self) -> list[str]:
        return sorted(
            str(name, "utf-8") if isinstance(name, bytes) else str(name)
            for name in await self._redis.smembers(f"{self._prefix}:names")
        )

    async def approve(self, name: str, version: int) -> PromptVersion:
        prompt = await self.get(name, version)
        if prompt is None:
            raise PromptError(f"no prompt {name}@{version}")
        if not prompt.approved:
            prompt = prompt.model_copy(update={"approved": True, "approved_at": time.time()})
            await self._redis.set(self._key(name, version), prompt.model_dump_json())
        return prompt

    async def resolve(self, ref: str) -> PromptVersion | None:
        """The version a request asked for: `name@version` as it is (approved or not: the caller decides), or
        `name`, its newest approved version (None when there is none)."""
        name, version = parse_ref(ref)
        if version is not None:
            return await self.get(name, version)
        approved = [prompt for prompt in await self.versions(name) if prompt.approved]
        return approved[-1] if approved else None


def diff(old: PromptVersion, new: PromptVersion) -> str:
    return "".join(
        difflib.unified_diff(
            old.template.splitlines(keepends=True),
            new.template.splitlines(keepends=True),
            fromfile=old.ref,
            tofile=new.ref,
        )
    )
