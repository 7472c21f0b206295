"""The shipped alert rules, checked and unit-tested by Prometheus's own `promtool` (Debian's `prometheus` package,
installed by .ci/run): a tenant whose spend jumps fires the anomaly alert, a steady one does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "configs" / "prometheus" / "tierserve-tenancy-rules.yml"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")

ANOMALY = {
    "severity": "warning",
    "tenant": "bursty",
}


def test_rules_pass_promtool_check() -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout + done.stderr


def test_spend_anomaly_fires_on_a_jump_and_not_on_steady_spend(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    summary = "Tenant bursty spends over 3x its trailing hourly rate"
    description = (
        "Spend per 5 minutes is above 3x its trailing hourly average; check "
        "`tierserve cost report --by key --since 1h`."
    )
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "30s",
        "tests": [
            {
                "interval": "30s",
                "input_series": [
                    # 1 cent per 30 s for an hour, then 20 cents per 30 s: 20x its rate.
                    {
                        "series": 'tierserve_cost_usd_total{tenant="bursty",tier="small"}',
                        "values": "0+0.01x120 1.4+0.2x40",
                    },
                    {"series": 'tierserve_cost_usd_total{tenant="steady",tier="small"}', "values": "0+1x160"},
                    {"series": 'tierserve_budget_soft_limit{scope="key",name="k1"}', "values": "0 0 1x20"},
                ],
                "promql_expr_test": [
                    {
                        "expr": 'tenant:tierserve_spend_usd:5m{tenant="steady"}',
                        "eval_time": "30m",
                        "exp_samples": [{"labels": 'tenant:tierserve_spend_usd:5m{tenant="steady"}', "value": 10}],
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "55m", "alertname": "TierserveSpendAnomaly", "exp_alerts": []},
                    {
                        "eval_time": "72m",
                        "alertname": "TierserveSpendAnomaly",
                        "exp_alerts": [
                            {"exp_labels": ANOMALY, "exp_annotations": {"summary": summary, "description": description}}
                        ],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "TierserveBudgetSoftLimit",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "scope": "key", "name": "k1"},
                                "exp_annotations": {
                                    "summary": "key k1 has used over its soft limit of its budget",
                                    "description": "tierserve_budget_used_ratio is past tenancy.soft_limit; requests "
                                    "are refused with insufficient_quota once it is spent.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "tenancy-rules-test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
