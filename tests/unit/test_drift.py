"""The drift detector on synthetic signals with known answers: two samples of one distribution stay quiet, a moved
mean or a new cluster of queries raises the alarm after `patience` checks, and the alarm comes down again."""

from __future__ import annotations

import numpy as np

from drift import DriftConfigValues, DriftDetector, mmd_rbf


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _cluster(rng: np.random.Generator, centre: np.ndarray, count: int, spread: float = 0.6) -> np.ndarray:
    return _unit(centre + spread * rng.standard_normal((count, centre.shape[0])))


def test_mmd_is_zero_for_one_sample_and_grows_with_distance() -> None:
    rng = np.random.default_rng(0)
    a = _cluster(rng, np.ones(16), 100)
    b = _cluster(rng, -np.ones(16), 100)
    assert mmd_rbf(a, a) < 1e-6
    assert mmd_rbf(a, b) > 10 * mmd_rbf(a, _cluster(rng, np.ones(16), 100))


def test_an_unshifted_stream_stays_quiet_and_a_shift_raises_the_alarm() -> None:
    rng = np.random.default_rng(1)
    centre, other = rng.standard_normal(32), rng.standard_normal(32)
    config = DriftConfigValues(baseline_size=200, window=100, check_every=20, patience=2)
    detector = DriftDetector(config)
    for vector in _cluster(rng, centre, 200):
        detector.observe(vector, {"route_score": float(rng.normal(0.3, 0.1))})
    assert detector.ready
    for vector in _cluster(rng, centre, 600):
        detector.observe(vector, {"route_score": float(rng.normal(0.3, 0.1))})
        assert not list(detector.alarms())
    shifted_at = None
    for i, vector in enumerate(_cluster(rng, other, 200), 1):
        detector.observe(vector, {"route_score": float(rng.normal(0.6, 0.1))})
        if shifted_at is None and {"queries", "route_score"} <= set(detector.alarms()):
            shifted_at = i
    assert shifted_at is not None and shifted_at <= 100
    report = detector.report()
    assert report["signals"]["queries"]["alarm"] and report["signals"]["queries"]["since"]  # type: ignore[index]
    for vector in _cluster(rng, centre, 300):
        detector.observe(vector, {"route_score": float(rng.normal(0.3, 0.1))})
    assert not list(detector.alarms())  # back to normal: the alarm came down
