"""The prompt stage: a request that names a versioned system prompt (`x-tierserve-prompt: name@version`, or
`name` for its newest approved version; or the same in the body's `tierserve_prompt`, the openai client's
`extra_body`) is served with that prompt's text as its first system message. Only an approved version serves (403
otherwise); the version becomes part of the cache key and of the audit record, and is echoed in
`x-tierserve-prompt-version`. Resolved versions are kept here briefly: an approved version never changes, and
`name` alone follows a new approval within `_NEWEST_TTL_S`."""

from __future__ import annotations

import dataclasses
import json
import time

from guards import with_canary
from serving.errors import Forbidden, InvalidRequest, NotFound
from serving.jobs import PROMPT_FIELD, PROMPT_HEADER
from serving.pipeline.context import RequestContext
from serving.prompts import PromptError, PromptStore, PromptVersion, parse_ref

_NEWEST_TTL_S = 2.0


class PromptTemplate:
    name = "prompt"

    def __init__(self, store: PromptStore | None, canary: bool = False) -> None:
        self._store = store
        self._canary = canary  # plant a canary the output guard looks for in answers (system-prompt leakage)
        self._resolved: dict[str, tuple[float, PromptVersion]] = {}

    async def run(self, ctx: RequestContext) -> None:
        job = ctx.job
        if job.prompt_ref is None:
            return
        if self._store is None:
            raise InvalidRequest(
                "Versioned prompts need Redis, which this gateway has not.", code="prompts_unavailable"
            )
        if job.endpoint != "chat":
            raise InvalidRequest(
                f"A versioned prompt ({PROMPT_HEADER} or {PROMPT_FIELD}) applies to chat completions only.",
                param=PROMPT_FIELD,
            )
        prompt = await self._resolve(job.prompt_ref, PROMPT_FIELD if job.prompt_in_body else PROMPT_HEADER)
        body = json.loads(job.body)
        template = with_canary(prompt.template, prompt.ref) if self._canary else prompt.template
        body["messages"] = [{"role": "system", "content": template}, *body.get("messages", [])]
        ctx.job = dataclasses.replace(
            job,
            body=json.dumps(body).encode(),
            context=(("system", template), *job.context),
            params={**job.params, "prompt": prompt.ref},
        )
        ctx.prompt_version = prompt.ref
        ctx.headers["x-tierserve-prompt-version"] = prompt.ref
        ctx.trace.set(prompt_version=prompt.ref)

    async def _resolve(self, ref: str, param: str) -> PromptVersion:
        assert self._store is not None
        kept = self._resolved.get(ref)
        if kept is not None and (kept[1].approved and "@" in ref or time.monotonic() - kept[0] < _NEWEST_TTL_S):
            return kept[1]
        try:
            name, version = parse_ref(ref)
            prompt = await self._store.resolve(ref)
        except PromptError as error:
            raise InvalidRequest(str(error), param=param, code="invalid_prompt") from None
        if prompt is None:
            what = f"version {version} of prompt '{name}'" if version else f"an approved version of prompt '{name}'"
            raise NotFound(f"There is no {what}.", param=param, code="prompt_not_found")
        if not prompt.approved:
            raise Forbidden(
                f"Prompt {prompt.ref} is not approved; an admin approves it with `tierserve prompts approve "
                f"{prompt.name} {prompt.version}`.",
                param=param,
                code="prompt_not_approved",
            )
        self._resolved[ref] = (time.monotonic(), prompt)
        return prompt
