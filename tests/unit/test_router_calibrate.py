"""router.calibrate and router.cost: thresholds that give each tier its share, written into a config in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from router import RouterConfig, TierPrice
from router.calibrate import (
    achieved_shares,
    parse_shares,
    replace_thresholds,
    thresholds_for_shares,
    write_thresholds,
)
from router.cost import expected_cost
from router.errors import RouterError
from router.policy import ThresholdPolicy


def test_parse_shares_fills_in_the_one_missing_tier() -> None:
    assert parse_shares(["large=0.3"], ["small", "large"]) == pytest.approx({"small": 0.7, "large": 0.3})
    assert parse_shares(["s=0.5", "l=0.2"], ["s", "m", "l"]) == pytest.approx({"s": 0.5, "m": 0.3, "l": 0.2})
    assert parse_shares(["s=0.5", "m=0.3", "l=0.2"], ["s", "m", "l"]) == pytest.approx({"s": 0.5, "m": 0.3, "l": 0.2})


@pytest.mark.parametrize(
    ("specs", "needle"),
    [
        (["huge=0.3"], "TIER=FRACTION"),
        (["large"], "TIER=FRACTION"),
        (["large=abc"], "not a number"),
        (["large=1.5"], "between 0 and 1"),
        (["large=0.3", "large=0.2"], "given twice"),
        (["small=0.8", "large=0.3"], "more than 1"),
        (["s=0.2"], "every tier but one"),
        (["s=0.2", "m=0.2", "l=0.2"], "add up to 1"),
    ],
)
def test_parse_shares_rejects_bad_specs(specs: list[str], needle: str) -> None:
    tiers = ["s", "m", "l"] if specs[0].startswith(("s=", "m=", "l=")) else ["small", "large"]
    with pytest.raises(RouterError, match=needle):
        parse_shares(specs, tiers)


@pytest.mark.parametrize("wanted", [0.05, 0.3, 0.5, 0.9])
def test_two_tiers_get_their_share(wanted: float) -> None:
    scores = np.random.default_rng(3).beta(2, 5, size=2000)
    shares = parse_shares([f"large={wanted}"], ["small", "large"])
    thresholds = thresholds_for_shares(scores, shares)
    got = achieved_shares(scores, ["small", "large"], thresholds)
    assert got["large"] == pytest.approx(wanted, abs=0.001)
    # The policy the gateway builds from these thresholds agrees with the calibration.
    policy = ThresholdPolicy(["small", "large"], thresholds)
    assert np.mean([policy.tier_for(s) == "large" for s in scores]) == pytest.approx(got["large"])
    RouterConfig(thresholds=thresholds)  # valid config values


def test_four_tiers_partition_the_traffic() -> None:
    scores = np.random.default_rng(4).random(1000)
    tiers = ["xs", "s", "m", "l"]
    shares = parse_shares(["xs=0.4", "s=0.3", "m=0.2"], tiers)
    thresholds = thresholds_for_shares(scores, shares)
    assert thresholds == sorted(thresholds) and len(thresholds) == 3
    got = achieved_shares(scores, tiers, thresholds)
    for tier in tiers:
        assert got[tier] == pytest.approx(shares[tier], abs=0.002)


def test_ties_and_extremes_stay_valid_thresholds() -> None:
    scores = np.array([0.5] * 50 + [0.9] * 50)
    thresholds = thresholds_for_shares(scores, {"s": 0.0, "m": 0.5, "l": 0.5})
    assert all(0 < t < 1 for t in thresholds) and thresholds[0] < thresholds[1]
    assert achieved_shares(scores, ["s", "m", "l"], thresholds) == {"s": 0.0, "m": 0.5, "l": 0.5}
    everything_small = thresholds_for_shares(scores, {"small": 1.0, "large": 0.0})
    assert achieved_shares(scores, ["small", "large"], everything_small)["large"] == 0.0
    with pytest.raises(RouterError, match="no prompts"):
        thresholds_for_shares(np.array([]), {"small": 0.5, "large": 0.5})


CONFIG = """# a comment that must survive
tiers:
  - name: small
    model: a
  - name: large
    model: b

router:
  thresholds: [0.5]   # calibrated later
  scorer: trained

cache:
  enabled: true
"""


def test_replace_thresholds_keeps_everything_else() -> None:
    text = replace_thresholds(CONFIG, [0.4213])
    assert "  thresholds: [0.4213]   # calibrated later" in text
    assert text.replace("[0.4213]", "[0.5]") == CONFIG
    assert yaml.safe_load(text)["router"] == {"thresholds": [0.4213], "scorer": "trained"}


def test_replace_thresholds_adds_missing_key_or_section_and_block_lists() -> None:
    no_key = CONFIG.replace("  thresholds: [0.5]   # calibrated later\n", "")
    assert yaml.safe_load(replace_thresholds(no_key, [0.3]))["router"]["thresholds"] == [0.3]
    no_section = "tiers: []\n"
    assert yaml.safe_load(replace_thresholds(no_section, [0.3, 0.6]))["router"] == {"thresholds": [0.3, 0.6]}
    block = CONFIG.replace("  thresholds: [0.5]   # calibrated later\n", "  thresholds:\n    - 0.5\n")
    loaded = yaml.safe_load(replace_thresholds(block, [0.25]))
    assert loaded["router"] == {"thresholds": [0.25], "scorer": "trained"} and loaded["cache"] == {"enabled": True}


def test_write_thresholds_returns_the_old_text(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(CONFIG)
    assert write_thresholds(path, [0.7]) == CONFIG
    assert yaml.safe_load(path.read_text())["router"]["thresholds"] == [0.7]
    with pytest.raises(RouterError, match="cannot update"):
        write_thresholds(tmp_path / "missing.yaml", [0.7])


def test_expected_cost_against_the_largest_tier() -> None:
    prices = [TierPrice("small", 0.1, 0.2), TierPrice("large", 1.0, 2.0)]
    estimate = expected_cost({"small": 0.7, "large": 0.3}, prices, prompt_tokens=1000, completion_tokens=500)
    small, large = 0.1 + 0.1, 1.0 + 1.0
    assert estimate.per_request == pytest.approx(0.7 * small + 0.3 * large)
    assert estimate.all_largest_per_request == pytest.approx(large)
    assert estimate.saving == pytest.approx(1 - (0.7 * small + 0.3 * large) / large)
    free = expected_cost({"small": 1.0, "large": 0.0}, [TierPrice("small", 0, 0), TierPrice("large", 0, 0)], 10, 10)
    assert free.saving == 0.0


def test_calibration_records_the_shares_beside_the_thresholds() -> None:
    text = replace_thresholds(CONFIG, [0.4213], {"small": 0.7002, "large": 0.2998})
    assert "  thresholds: [0.4213]   # calibrated later\n  calibrated_shares: {small: 0.7002, large: 0.2998}\n" in text
    router = yaml.safe_load(text)["router"]
    assert router["calibrated_shares"] == {"small": 0.7002, "large": 0.2998} and router["scorer"] == "trained"
    # a second calibration replaces both, whatever form the shares were left in (flow or block mapping)
    block = text.replace("calibrated_shares: {small: 0.7002, large: 0.2998}", "calibrated_shares:\n    small: 0.7")
    again = yaml.safe_load(replace_thresholds(block, [0.3], {"small": 0.6, "large": 0.4}))["router"]
    assert again == {"thresholds": [0.3], "calibrated_shares": {"small": 0.6, "large": 0.4}, "scorer": "trained"}
    assert yaml.safe_load(replace_thresholds("tiers: []\n", [0.3], {"s": 0.5, "l": 0.5}))["router"] == {
        "thresholds": [0.3],
        "calibrated_shares": {"s": 0.5, "l": 0.5},
    }


@pytest.mark.parametrize(
    ("shares", "needle"),
    [
        ({"small": 1.0}, "names 1 tier(s); 1 threshold(s) cut 2"),
        ({"small": 0.5, "large": 0.2}, "add up to 0.7000, not 1"),
        ({"small": 1.3, "large": -0.3}, "between 0 and 1"),
    ],
)
def test_calibrated_shares_must_fit_the_thresholds(shares: dict[str, float], needle: str) -> None:
    assert RouterConfig(thresholds=[0.4], calibrated_shares={"small": 0.7001, "large": 0.3}).calibrated_shares
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        RouterConfig(thresholds=[0.4], calibrated_shares=shares)
