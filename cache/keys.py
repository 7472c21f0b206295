"""Cache keys: the exact part (namespace) is hashed; only the paraphrasable text is matched by similarity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def namespace_key(
    *,
    tenant: str,
    model_alias: str,
    model_version: str = "",
    endpoint: str,
    context: Sequence[tuple[str, str]],
    params: Mapping[str, Any],
) -> str:
    """Hash of everything that must match exactly for an answer to be reused.

    `model_version` changes when the model behind the alias changes (a tier's version, or for
    "auto" every tier's and the router's), so an upgrade invalidates old answers.
    `context` is every message except the final user turn (system prompt, earlier turns) as
    (role, text); `params` are the sampling parameters that change the answer. The tenant is part
    of the hash even though indexes are per tenant, so a key can never collide across tenants.
    """
    canonical = json.dumps(
        {
            "tenant": tenant,
            "model": model_alias,
            "model_version": model_version,
            "endpoint": endpoint,
            "context": [list(turn) for turn in context],
            "params": dict(sorted(params.items())),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
