"""RouteLLM-style evaluation of a difficulty score against real outcomes.

Routing the top-k scores to the strong model and the rest to the weak one gives, for every share of strong
calls, a quality (accuracy over all prompts). PGR (performance gap recovered) puts it on a 0..1 scale between
all-weak and all-strong; APGR is the area under PGR over the share of strong calls (a random router: 0.5;
an oracle: near 1); CPT(x) is the smallest share of strong calls that recovers x of the gap.

The curve is exact: equal scores form a group whose order is arbitrary, so within a group the expected
quality grows linearly (what random tie-breaking gives on average), and the area is computed on the group
boundaries. A constant score therefore evaluates exactly like the random router.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.errors import RouterError

__all__ = ["CurvePoint", "RoutingReport", "cpt", "evaluate_scores", "pgr_curve"]

_REPORT_SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class CurvePoint:
    share: float  # share of requests sent to the strong model
    quality: float  # accuracy over all requests
    pgr: float


@dataclass(frozen=True)
class RoutingReport:
    n: int
    weak_accuracy: float
    strong_accuracy: float
    apgr: float
    cpt50: float
    cpt80: float
    oracle_apgr: float
    curve: list[CurvePoint]
    apgr_ci95: tuple[float, float] | None = None  # bootstrap over prompts (small samples are noisy)

    def as_dict(self, *, brief: bool = False) -> dict[str, Any]:
        """The report for JSON, rounded to 4 decimals; `brief`: n, apgr, cpt50 and cpt80 only (what the
        weights file records about its held-out figures)."""
        if brief:
            return {
                "n": self.n,
                "apgr": round(self.apgr, 4),
                "cpt50": round(self.cpt50, 4),
                "cpt80": round(self.cpt80, 4),
            }
        return {
            "n": self.n,
            "weak_accuracy": round(self.weak_accuracy, 4),
            "strong_accuracy": round(self.strong_accuracy, 4),
            "apgr": round(self.apgr, 4),
            "cpt50": round(self.cpt50, 4),
            "cpt80": round(self.cpt80, 4),
            "oracle_apgr": round(self.oracle_apgr, 4),
            "apgr_ci95": None if self.apgr_ci95 is None else [round(v, 4) for v in self.apgr_ci95],
            "curve": [{k: round(v, 4) for k, v in asdict(p).items()} for p in self.curve],
        }


def pgr_curve(
    scores: NDArray[np.floating], weak: NDArray[np.bool_], strong: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(shares, pgr) at every tie-group boundary, highest scores sent to the strong model first."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if n == 0 or weak.shape[0] != n or strong.shape[0] != n:
        raise RouterError("scores and outcomes must be non-empty and of equal length")
    gap = float(strong.sum()) - float(weak.sum())
    if gap <= 0:
        raise RouterError(
            f"the strong model is not better than the weak one on this data ({int(strong.sum())} vs "
            f"{int(weak.sum())} correct of {n}): PGR is undefined"
        )
    order = np.argsort(-scores, kind="stable")
    gain = (strong.astype(np.float64) - weak.astype(np.float64))[order]
    cumulative = np.concatenate([[0.0], np.cumsum(gain)])
    ranked = scores[order]
    # Boundaries between groups of equal scores (plus both ends).
    boundaries = np.concatenate([[0], np.flatnonzero(ranked[1:] != ranked[:-1]) + 1, [n]])
    return boundaries / n, cumulative[boundaries] / gap


def _area(shares: NDArray[np.float64], pgr: NDArray[np.float64]) -> float:
    return float(np.sum((shares[1:] - shares[:-1]) * (pgr[1:] + pgr[:-1]) / 2))


def cpt(shares: NDArray[np.float64], pgr: NDArray[np.float64], target: float) -> float:
    """Smallest share of strong calls whose (interpolated) PGR reaches `target`."""
    reached = np.flatnonzero(pgr >= target - 1e-12)
    first = int(reached[0])
    if first == 0:
        return float(shares[0])
    s0, s1, p0, p1 = shares[first - 1], shares[first], pgr[first - 1], pgr[first]
    return float(s0 + (s1 - s0) * (target - p0) / (p1 - p0))


def _bootstrap_ci(
    scores: NDArray[np.float64], weak: NDArray[np.bool_], strong: NDArray[np.bool_], rounds: int
) -> tuple[float, float] | None:
    rng = np.random.default_rng(0)  # fixed: the same data always reports the same interval
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, scores.shape[0], scores.shape[0])
        if strong[pick].sum() > weak[pick].sum():
            values.append(_area(*pgr_curve(scores[pick], weak[pick], strong[pick])))
    if len(values) < rounds // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def evaluate_scores(
    scores: NDArray[np.floating], weak: NDArray[np.bool_], strong: NDArray[np.bool_], bootstrap: int = 0
) -> RoutingReport:
    """`bootstrap` > 0 adds a 95 % interval for APGR from that many resamples of the prompts."""
    shares, pgr = pgr_curve(scores, weak, strong)
    weak_acc = float(weak.mean())
    strong_acc = float(strong.mean())
    gap = strong_acc - weak_acc
    # The oracle sends exactly the prompts that only the strong model gets right, first.
    oracle_shares, oracle_pgr = pgr_curve(strong.astype(np.float64) - weak.astype(np.float64), weak, strong)
    curve = [
        CurvePoint(share=s, pgr=p, quality=weak_acc + p * gap)
        for s in _REPORT_SHARES
        for p in [float(np.interp(s, shares, pgr))]
    ]
    return RoutingReport(
        n=int(shares.shape[0] and len(weak)),
        weak_accuracy=weak_acc,
        strong_accuracy=strong_acc,
        apgr=_area(shares, pgr),
        cpt50=cpt(shares, pgr, 0.5),
        cpt80=cpt(shares, pgr, 0.8),
        oracle_apgr=_area(oracle_shares, oracle_pgr),
        curve=curve,
        apgr_ci95=_bootstrap_ci(np.asarray(scores, dtype=np.float64), weak, strong, bootstrap) if bootstrap else None,
    )
