"""The guards' settings (`guards:` in the stack config): what each detector looks for, and per tenant what happens
when it finds something."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

InputAction = Literal["off", "flag", "block", "route"]
OutputAction = Literal["off", "flag", "redact", "block"]

# Presidio's pattern recognizers that need no NLP model: each is a regex with a checksum or a parser behind it.
DEFAULT_PII_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "US_ITIN",
    "UK_NINO",
    "IBAN_CODE",
    "IP_ADDRESS",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuardPolicy(_Strict):
    """What the guards do for one tenant. Unset fields take `guards.default_policy`'s value."""

    input_action: InputAction | None = Field(
        default=None,
        description="A prompt scored as injection/jailbreak: off (not checked), flag (served, verdict recorded), "
        "block (400 content_policy_violation) or route (served by `input_route_tier`).",
    )
    input_route_tier: str | None = Field(default=None, description="The tier flagged prompts go to (action route).")
    input_threshold: float | None = Field(
        default=None, gt=0, lt=1, description="Score at or above which a message is injection; unset: the weights'."
    )
    redact_prompt: bool | None = Field(
        default=None,
        description="Redact PII from the prompt the model sees too (true), or only from what is stored (false).",
    )
    output_action: OutputAction | None = Field(
        default=None,
        description="Secrets, PII or system-prompt leakage in an answer: off, flag (recorded only), redact "
        "(replaced by [REDACTED:KIND]) or block (the answer ends there, finish_reason content_filter).",
    )
    audit_texts: bool | None = Field(
        default=None, description="Keep the redacted prompt and answer texts in the audit record (else hashes only)."
    )


class ResolvedPolicy(_Strict):
    input_action: InputAction
    input_route_tier: str | None
    input_threshold: float | None
    redact_prompt: bool
    output_action: OutputAction
    audit_texts: bool


class InjectionConfig(_Strict):
    weights: Path | None = Field(
        default=None,
        description="Trained injection-classifier weights (`tierserve guards train`); unset: the packaged ones.",
    )


class PiiConfig(_Strict):
    enabled: bool = Field(default=True, description="Detect PII in prompts and answers (Presidio recognizers).")
    entities: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PII_ENTITIES), description="Presidio entity types to detect."
    )
    min_score: float = Field(
        default=0.4, ge=0, le=1, description="Presidio confidence at or above which a finding counts."
    )


class OutputConfig(_Strict):
    secrets: bool = Field(default=True, description="Look for credentials (detect-secrets' patterns) in answers.")
    pii: bool = Field(default=True, description="Look for PII in answers.")
    leakage: bool = Field(default=True, description="Look for the system prompt (its canary, long overlaps).")
    overlap_words: int = Field(
        default=8, ge=3, description="This many consecutive words of the system prompt in an answer is a leak."
    )
    canary: bool = Field(
        default=True,
        description="Put a canary token in versioned system prompts; the canary in an answer is a leak.",
    )
    holdback_chars: int = Field(
        default=96,
        ge=16,
        le=4096,
        description="A redacting or blocking stream holds back this many characters so a secret split across "
        "chunks is caught before any of it leaves.",
    )


class GuardsConfig(_Strict):
    enabled: bool = Field(default=True, description="Run the input and output guards at all.")
    injection: InjectionConfig = Field(default_factory=InjectionConfig, description="The injection classifier.")
    pii: PiiConfig = Field(default_factory=PiiConfig, description="PII detection and redaction.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="What the output guard looks for.")
    default_policy: GuardPolicy = Field(
        default_factory=lambda: GuardPolicy(
            input_action="flag", redact_prompt=False, output_action="flag", audit_texts=False
        ),
        description="The policy of a tenant not named in `tenants`.",
    )
    tenants: dict[str, GuardPolicy] = Field(default_factory=dict, description="Per-tenant overrides.")

    def policy(self, tenant: str) -> ResolvedPolicy:
        base = self.default_policy.model_dump()
        override = self.tenants.get(tenant)
        if override is not None:
            base.update({k: v for k, v in override.model_dump().items() if v is not None})
        return ResolvedPolicy(
            input_action=base["input_action"] or "flag",
            input_route_tier=base["input_route_tier"],
            input_threshold=base["input_threshold"],
            redact_prompt=bool(base["redact_prompt"]),
            output_action=base["output_action"] or "flag",
            audit_texts=bool(base["audit_texts"]),
        )

    def route_tiers(self) -> set[str]:
        policies = [self.default_policy, *self.tenants.values()]
        return {p.input_route_tier for p in policies if p.input_route_tier is not None}
