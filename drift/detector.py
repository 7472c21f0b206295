"""Drift of the traffic against a baseline, per signal, over a sliding window.

- `queries`: the query embeddings (all-MiniLM-L6-v2, unit norm), compared by the maximum mean discrepancy with
  an RBF kernel (Gretton et al. 2012). Its alarm threshold is calibrated on the baseline itself: the MMD of random
  half-splits of the baseline, 99th percentile, times a margin; so "drift" means "further apart than two samples of
  the baseline ever are".
- scalar signals (router score, answer length, cache hit, error, empty answer, refusal, a tier's share): the
  window's mean against the baseline's, in standard errors of the window (a two-sample z score).

An alarm needs `patience` checks in a row over threshold, which keeps one odd window from paging anyone.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["DriftConfigValues", "DriftDetector", "SignalState", "mmd_rbf"]


def mmd_rbf(x: NDArray[np.float32], y: NDArray[np.float32], gamma: float = 1.0) -> float:
    """Biased MMD^2 with k(a, b) = exp(-gamma * |a - b|^2) (unit vectors: |a - b|^2 = 2 - 2 a.b)."""

    def kernel(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
        return float(np.exp(-gamma * np.maximum(0.0, 2.0 - 2.0 * (a @ b.T))).mean())

    return kernel(x, x) + kernel(y, y) - 2.0 * kernel(x, y)


@dataclass(frozen=True)
class DriftConfigValues:
    baseline_size: int = 300  # requests that make the baseline (the first ones seen, or a loaded one)
    window: int = 150  # the recent requests compared with it
    check_every: int = 25  # requests between two checks
    margin: float = 1.5  # the embedding threshold: this times the 99th percentile of baseline half-splits
    z_threshold: float = 4.0  # scalar signals: window mean this many standard errors from the baseline's
    patience: int = 2  # checks in a row over threshold before the alarm
    calibration_splits: int = 60
    seed: int = 0


@dataclass
class SignalState:
    score: float = 0.0  # MMD^2 / threshold for queries; |z| / z_threshold for scalars (>= 1: over)
    over: int = 0  # consecutive checks over threshold
    alarm: bool = False
    since: float | None = None  # when the alarm went up (time.time())
    baseline_mean: float | None = None
    window_mean: float | None = None


@dataclass
class DriftDetector:
    config: DriftConfigValues = field(default_factory=DriftConfigValues)
    _baseline_vectors: list[NDArray[np.float32]] = field(default_factory=list)
    _window_vectors: deque[NDArray[np.float32]] = field(default_factory=deque)
    _baseline_scalars: dict[str, list[float]] = field(default_factory=dict)
    _window_scalars: dict[str, deque[float]] = field(default_factory=dict)
    _threshold: float | None = None
    _seen: int = 0
    states: dict[str, SignalState] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self._threshold is not None

    def observe(self, vector: NDArray[np.float32] | None, scalars: Mapping[str, float]) -> None:
        """One request's signals (a signal it does not have is simply absent)."""
        self._seen += 1
        if not self.ready:
            if vector is not None:
                self._baseline_vectors.append(np.asarray(vector, dtype=np.float32))
            for name, value in scalars.items():
                self._baseline_scalars.setdefault(name, []).append(float(value))
            if self._seen >= self.config.baseline_size:
                self._calibrate()
            return
        if vector is not None:
            self._window_vectors.append(np.asarray(vector, dtype=np.float32))
            while len(self._window_vectors) > self.config.window:
                self._window_vectors.popleft()
        for name, value in scalars.items():
            window = self._window_scalars.setdefault(name, deque(maxlen=self.config.window))
            window.append(float(value))
        if self._seen % self.config.check_every == 0:
            self.check()

    def _calibrate(self) -> None:
        vectors = np.stack(self._baseline_vectors) if self._baseline_vectors else np.zeros((0, 1), np.float32)
        rng = np.random.default_rng(self.config.seed)
        half = min(self.config.window, len(vectors) // 2)
        splits = []
        for _ in range(self.config.calibration_splits if half >= 10 else 0):
            order = rng.permutation(len(vectors))
            splits.append(mmd_rbf(vectors[order[:half]], vectors[order[half : 2 * half]]))
        self._threshold = self.config.margin * float(np.quantile(splits, 0.99)) if splits else math.inf

    def check(self) -> dict[str, SignalState]:
        if self._threshold is not None and len(self._window_vectors) >= self.config.window // 2:
            baseline = np.stack(self._baseline_vectors)
            distance = mmd_rbf(baseline, np.stack(self._window_vectors))
            self._update("queries", distance / self._threshold if self._threshold > 0 else 0.0, None, None)
        for name, window in self._window_scalars.items():
            base = self._baseline_scalars.get(name)
            if not base or len(window) < self.config.window // 2:
                continue
            mean_b, mean_w = float(np.mean(base)), float(np.mean(window))
            spread = math.sqrt(float(np.var(base)) / len(base) + float(np.var(window)) / len(window)) or 1e-9
            z = abs(mean_w - mean_b) / spread
            self._update(name, z / self.config.z_threshold, mean_b, mean_w)
        return self.states

    def _update(self, name: str, score: float, baseline: float | None, window: float | None) -> None:
        state = self.states.setdefault(name, SignalState())
        state.score, state.baseline_mean, state.window_mean = round(score, 4), baseline, window
        state.over = state.over + 1 if score >= 1.0 else 0
        alarm = state.over >= self.config.patience
        if alarm and not state.alarm:
            state.since = time.time()
        if not alarm:
            state.since = None
        state.alarm = alarm

    def report(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "seen": self._seen,
            "baseline_size": self.config.baseline_size,
            "window": self.config.window,
            "signals": {
                name: {
                    "score": s.score,
                    "alarm": s.alarm,
                    "since": s.since,
                    "baseline_mean": s.baseline_mean,
                    "window_mean": s.window_mean,
                }
                for name, s in sorted(self.states.items())
            },
        }

    def alarms(self) -> Iterable[str]:
        return [name for name, state in self.states.items() if state.alarm]
