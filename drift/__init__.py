"""Drift of the traffic against a baseline (query embeddings by MMD, scalar signals by z score). Pure numpy: knows
nothing of Ray or HTTP; the gateway feeds it."""

from drift.detector import DriftConfigValues, DriftDetector, SignalState, mmd_rbf

__all__ = ["DriftConfigValues", "DriftDetector", "SignalState", "mmd_rbf"]
