"""Complexity router: a difficulty score in [0, 1] and thresholds that map it to the cheapest able tier.

The door holds what the gateway and the commands use; the rest (scorers, training, evaluation) is reached
through its own module by the router's CLI and tests."""

from router.config import RouterConfig
from router.cost import TierPrice
from router.factory import build_router
from router.policy import Decision, Failure, Overrides, Router
from router.scorer import RouteInput

__all__ = ["Decision", "Failure", "Overrides", "RouteInput", "Router", "RouterConfig", "TierPrice", "build_router"]
