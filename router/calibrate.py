"""Thresholds from traffic shares: score a sample of real prompts, then cut the score range at the quantiles
that give each tier its chosen share. Also writes the thresholds into a stack config YAML, in place."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from router.errors import RouterError

__all__ = ["achieved_shares", "parse_shares", "replace_thresholds", "thresholds_for_shares"]

_EDGE = 1e-6  # thresholds must lie strictly inside (0, 1)


def parse_shares(specs: Sequence[str], tiers: Sequence[str]) -> dict[str, float]:
    """`["large=0.3"]` -> a share for every tier; one tier may be left out and takes the rest."""
    shares: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or name not in tiers:
            raise RouterError(f"--share {spec!r}: expected TIER=FRACTION with TIER one of {', '.join(tiers)}")
        try:
            share = float(value)
        except ValueError:
            raise RouterError(f"--share {spec!r}: {value!r} is not a number") from None
        if not 0.0 <= share <= 1.0:
            raise RouterError(f"--share {spec!r}: a share lies between 0 and 1")
        if name in shares:
            raise RouterError(f"--share: tier '{name}' given twice")
        shares[name] = share
    missing = [t for t in tiers if t not in shares]
    total = sum(shares.values())
    if total > 1.0 + 1e-9:
        raise RouterError(f"--share: the shares add up to {total:.3f}, more than 1")
    if len(missing) > 1:
        raise RouterError(f"--share: give a share for every tier but one (missing: {', '.join(missing)})")
    if missing:
        shares[missing[0]] = 1.0 - total
    elif abs(total - 1.0) > 1e-6:
        raise RouterError(f"--share: the shares of all tiers must add up to 1, got {total:.3f}")
    return {t: shares[t] for t in tiers}


def thresholds_for_shares(scores: NDArray[np.floating], shares: Mapping[str, float]) -> list[float]:
    """Cut points (ascending, one fewer than tiers; tiers in `shares` order, cheapest first)."""
    ranked = np.sort(np.asarray(scores, dtype=np.float64))
    n = ranked.shape[0]
    if n == 0:
        raise RouterError("no prompts to calibrate on")
    cuts: list[float] = []
    cumulative = 0.0
    for share in list(shares.values())[:-1]:
        cumulative += share
        k = int(round(cumulative * n))
        if k <= 0:
            cut = ranked[0] / 2  # below every score: this tier gets nothing
        elif k >= n:
            cut = (ranked[-1] + 1.0) / 2  # above every score
        else:
            cut = (ranked[k - 1] + ranked[k]) / 2  # midway between the last score in and the first out
        cut = min(max(cut, _EDGE), 1.0 - _EDGE)
        if cuts and cut <= cuts[-1]:
            cut = float(np.nextafter(cuts[-1], 1.0))
        cuts.append(float(cut))
    return cuts


def achieved_shares(
    scores: NDArray[np.floating], tiers: Sequence[str], thresholds: Sequence[float]
) -> dict[str, float]:
    """The share of `scores` each tier receives under `thresholds` (a score on a cut goes up)."""
    values = np.asarray(scores, dtype=np.float64)
    index = np.searchsorted(np.asarray(thresholds, dtype=np.float64), values, side="right")
    counts = np.bincount(index, minlength=len(tiers))
    return {tier: float(counts[i]) / max(values.shape[0], 1) for i, tier in enumerate(tiers)}


_TOP_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def _set_router_key(lines: list[str], start: int, end: int, key: str, value: str, after: str | None) -> int:
    """Set `key: value` among the router section's lines [start + 1, end), keeping the line's comment; a missing
    key goes after the `after` key's line (else first). Returns the change in the number of lines."""
    pattern = re.compile(rf"^(?P<indent>\s+){key}\s*:[^#\n]*(?P<comment>#.*)?$")
    for i in range(start + 1, end):
        match = pattern.match(lines[i])
        if match is not None:
            indent = match.group("indent")
            comment = f"   {match.group('comment')}" if match.group("comment") else ""
            # A block value (a "- 0.5" list, or "small: 0.7" lines indented deeper) is replaced as a whole.
            j = i + 1
            while j < end and lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > len(indent):
                j += 1
            while j < end and re.match(rf"^{indent}-", lines[j]):
                j += 1
            lines[i:j] = [f"{indent}{key}: {value}{comment}"]
            return 1 - (j - i)
    first = next((line for line in lines[start + 1 : end] if line.strip()), "  x")
    indent = first[: len(first) - len(first.lstrip())] or "  "
    at = start + 1
    if after is not None:
        anchor = re.compile(rf"^{indent}{after}\s*:")
        at = next((i + 1 for i in range(start + 1, end) if anchor.match(lines[i])), at)
    lines.insert(at, f"{indent}{key}: {value}")
    return 1


def replace_thresholds(yaml_text: str, thresholds: Sequence[float], shares: Mapping[str, float] | None = None) -> str:
    """The config text with `router.thresholds` (and, given `shares`, `router.calibrated_shares`) set; every other
    line (and comment) is kept as it was."""
    value = "[" + ", ".join(f"{t:.6g}" for t in thresholds) + "]"
    lines = yaml_text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^router\s*:\s*(#.*)?$", line)), None)
    if start is None:
        suffix = "" if yaml_text.endswith("\n") or not yaml_text else "\n"
        text = f"{yaml_text}{suffix}router:\n  thresholds: {value}\n"
        return text if shares is None else replace_thresholds(text, thresholds, shares)
    end = next((i for i in range(start + 1, len(lines)) if _TOP_KEY.match(lines[i])), len(lines))
    end += _set_router_key(lines, start, end, "thresholds", value, None)
    if shares is not None:
        mapping = "{" + ", ".join(f"{tier}: {share:.4f}" for tier, share in shares.items()) + "}"
        _set_router_key(lines, start, end, "calibrated_shares", mapping, "thresholds")
    return "\n".join(lines) + ("\n" if yaml_text.endswith("\n") else "")


def write_thresholds(path: Path, thresholds: Sequence[float], shares: Mapping[str, float] | None = None) -> str:
    """Rewrite the thresholds (and the shares they gave) in the config file at `path`; returns the previous text
    (to restore on error)."""
    try:
        old = path.read_text(encoding="utf-8")
        path.write_text(replace_thresholds(old, thresholds, shares), encoding="utf-8")
    except OSError as error:
        raise RouterError(f"cannot update {path}: {error.strerror}") from None
    return old
