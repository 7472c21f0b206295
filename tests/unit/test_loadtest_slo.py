"""Records, aggregation, SLO files and verdicts, workloads, shapes and the capacity summary: pure functions
over request records, tested on a recorded run of the embedded stack and on hand-made records."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.main import app
from loadtest.capacity import StepResult, capacity_steps, summarize_capacity
from loadtest.records import RecordWriter, RequestRecord, read_records
from loadtest.runner import judge, parse_duration
from loadtest.slo import ScenarioSlo, SloError, apply_override, evaluate, load_slo_file
from loadtest.stats import GoodputCriteria, metric_names, percentile, summarize
from loadtest.workloads import SCENARIOS, Workload, iter_json_array, load_sharegpt, scenario, shape_target

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "loadtest_chat_records.jsonl"


def rec(start: float, e2e: float, **fields: object) -> RequestRecord:
    values: dict[str, object] = {"status": 200, "ok": True, "tier": "small", "cache": "miss"} | fields
    return RequestRecord(start=start, e2e_s=e2e, **values)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ records


def test_records_round_trip_and_a_truncated_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = rec(10.0, 1.5, stream=True, ttft_s=0.2, itl_s=(0.1, 0.12), output_tokens=3, route_score=0.4)
    writer = RecordWriter(path)
    writer.write([first, rec(5.0, 0.5, ok=False, status=503, error="503: down")])
    writer.close()
    with path.open("a") as handle:
        handle.write('{"start": 12.0, "e2e_s": 0.')  # a worker killed mid-write
    records = read_records(path)
    assert [r.start for r in records] == [5.0, 10.0]  # sorted by start
    assert records[1] == first
    assert records[0].error_kind == "503"


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(rec(1, 1).to_json() + "\nnot json\n" + rec(2, 1).to_json() + "\n")
    with pytest.raises(ValueError, match=":2: not a request record"):
        read_records(path)


def test_tpot_and_error_kinds() -> None:
    assert rec(0, 2.0, ttft_s=0.5, output_tokens=4).tpot_s == pytest.approx(0.5)
    assert rec(0, 2.0, ttft_s=0.5, output_tokens=1).tpot_s is None
    assert rec(0, 1, ok=False, status=0).error_kind == "connection"
    assert rec(0, 1, ok=False, status=200).error_kind == "inband"


# -------------------------------------------------------------------------------------------------- stats


def test_percentiles_per_scope_goodput_and_errors() -> None:
    records = [
        rec(0, 1.0, stream=True, ttft_s=0.1, output_tokens=11, itl_s=(0.05,) * 10),  # good
        rec(1, 2.0, stream=True, ttft_s=0.9, output_tokens=11, tier="large"),  # TTFT too slow
        rec(2, 0.05, cache="hit", output_tokens=5),  # not streamed: judged on e2e only -> good
        rec(3, 9.0, output_tokens=5),  # e2e too slow
        rec(4, 0.1, ok=False, status=429, error="429: slow down", cache="unknown"),
    ]
    stats = summarize(records, GoodputCriteria(ttft_ms=500, tpot_ms=200, e2e_ms=5000), duration_s=10)
    overall = stats.overall
    assert overall.requests == 5 and overall.failures == 1
    assert overall.errors_by_kind == {"429": 1}
    assert overall.metric("error_rate") == pytest.approx(0.2)
    assert overall.metric("rps") == pytest.approx(0.5)
    assert overall.metric("goodput_rps") == pytest.approx(0.2)  # 2 good requests in 10 s
    assert overall.metric("goodput_ratio") == pytest.approx(0.4)
    assert overall.metric("e2e_p50_ms") == pytest.approx(1500)  # of the 4 successes: 50, 1000, 2000, 9000
    assert overall.metric("ttft_p50_ms") == pytest.approx(500)
    assert overall.metric("itl_p99_ms") == pytest.approx(50)
    assert overall.metric("cache_hit_ratio") == pytest.approx(1 / 4)
    assert overall.metric("output_tokens_per_s") == pytest.approx(3.2)
    assert set(stats.tiers) == {"small", "large"} and stats.tiers["large"].requests == 1
    assert stats.group("tier:large") is stats.tiers["large"]
    assert stats.group("cache:hit") is not None and stats.group("cache:hit").requests == 1  # type: ignore[union-attr]
    assert stats.group("tier:nope") is None


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))


def test_drift_compares_the_last_fifth_with_the_first() -> None:
    early = [rec(i, 1.0) for i in range(5)]
    late = [rec(95 + i * 0.5, 2.0) for i in range(5)]
    stats = summarize([*early, *late], GoodputCriteria(), duration_s=100)
    assert stats.overall.metric("e2e_p95_drift_ratio") == pytest.approx(2.0)


# -------------------------------------------------------------------------------------------------- SLOs


def test_slo_files_in_configs_are_valid_and_cover_every_scenario() -> None:
    for name in ("slo.yaml", "slo-cpu.yaml"):
        slo_file = load_slo_file(ROOT / "configs" / name)
        for scenario_name in SCENARIOS:
            assert slo_file.for_scenario(scenario_name).targets(), (name, scenario_name)


def test_defaults_merge_under_the_scenario(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(
        "defaults:\n  goodput: {ttft_ms: 100, e2e_ms: 900}\n  overall: {error_rate: 0.01, e2e_p95_ms: 1000}\n"
        "  tiers: {small: {ttft_p95_ms: 50}}\n"
        "scenarios:\n  chat:\n    goodput: {ttft_ms: 200}\n    overall: {e2e_p95_ms: 2000}\n"
        "    tiers: {small: {e2e_p99_ms: 3000}, large: {e2e_p99_ms: 9000}}\n"
    )
    slo = load_slo_file(path).for_scenario("chat")
    assert slo.goodput.ttft_ms == 200 and slo.goodput.e2e_ms == 900
    assert slo.overall == {"error_rate": 0.01, "e2e_p95_ms": 2000}
    assert slo.tiers == {"small": {"ttft_p95_ms": 50, "e2e_p99_ms": 3000}, "large": {"e2e_p99_ms": 9000}}
    assert load_slo_file(path).for_scenario("cache").overall["e2e_p95_ms"] == 1000  # defaults only


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scenarios:\n  chat:\n    overall: {ttft_p97_ms: 5}\n", "unknown metric 'ttft_p97_ms'"),
        ("scenarios:\n  chat:\n    overal: {}\n", "scenarios.chat.overal"),
        ("scenarios: [", "not valid YAML"),
        ("scenarios:\n  chat:\n    overall: {error_rate: -1}\n", "finite number >= 0"),
    ],
)
def test_bad_slo_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(text)
    with pytest.raises(SloError, match=message):
        load_slo_file(path)


def test_overrides() -> None:
    slo = ScenarioSlo.model_validate({"overall": {"ttft_p95_ms": 500}})
    slo = apply_override(slo, "ttft_p95_ms=1")
    slo = apply_override(slo, "tier:small.e2e_p99_ms=3000")
    slo = apply_override(slo, "cache:hit.e2e_p95_ms = 80")
    slo = apply_override(slo, "goodput.ttft_ms=700")
    assert slo.overall == {"ttft_p95_ms": 1}
    assert slo.tiers == {"small": {"e2e_p99_ms": 3000}} and slo.cache == {"hit": {"e2e_p95_ms": 80}}
    assert slo.goodput.ttft_ms == 700
    for bad, message in (
        ("ttft_p95_ms", "expected NAME=VALUE"),
        ("ttft_p95_ms=fast", "not a number"),
        ("latency=3", "unknown metric 'latency'"),
        ("region:eu.ttft_p95_ms=3", "scope must be"),
        ("goodput.itl_ms=3", "goodput targets are"),
    ):
        with pytest.raises(SloError, match=message):
            apply_override(slo, bad)


def test_evaluate_ceilings_floors_and_missing_data() -> None:
    records = [rec(i, 1.0 + i / 10, stream=True, ttft_s=0.2, output_tokens=3) for i in range(10)]
    slo = ScenarioSlo.model_validate(
        {
            "goodput": {"e2e_ms": 1500},
            "overall": {"e2e_p50_ms": 1500, "ttft_p95_ms": 100, "goodput_ratio": 0.5, "error_rate": 0},
            "tiers": {"large": {"e2e_p95_ms": 1e9}},
        }
    )
    results = {r.name: r for r in evaluate(slo, summarize(records, slo.goodput.criteria()))}
    assert results["e2e_p50_ms"].passed and results["e2e_p50_ms"].measured == pytest.approx(1450)
    assert not results["ttft_p95_ms"].passed and results["ttft_p95_ms"].direction == "max"
    assert results["goodput_ratio"].passed and results["goodput_ratio"].direction == "min"  # 6/10 within 1.5 s
    assert results["error_rate"].passed
    assert not results["tier:large.e2e_p95_ms"].passed  # no request reached it: missing data never passes
    assert results["tier:large.e2e_p95_ms"].note == "no requests in this scope"


@pytest.mark.skipif(not RECORDED.exists(), reason="recorded run not present")
def test_verdict_on_a_recorded_run_of_the_embedded_stack() -> None:
    records = read_records(RECORDED)
    assert len(records) > 10
    slo = load_slo_file(ROOT / "configs" / "slo-cpu.yaml").for_scenario("chat")
    verdict = judge("chat", records, slo, None)
    # recompute two figures independently of the stats module
    e2e = sorted(r.e2e_s * 1e3 for r in records if r.ok)
    assert verdict.stats.overall.metric("e2e_p50_ms") == pytest.approx(percentile(e2e, 50))
    ttft = [r.ttft_s * 1e3 for r in records if r.ok and r.ttft_s is not None]
    by_name = {r.name: r for r in verdict.results}
    if "ttft_p95_ms" in by_name:
        assert by_name["ttft_p95_ms"].measured == pytest.approx(percentile(ttft, 95))
    assert verdict.passed  # the committed CPU targets hold on the run they were set from
    strict = apply_override(slo, f"ttft_p95_ms={percentile(ttft, 95) * 0.5}")
    assert [r.name for r in judge("chat", records, strict, None).breaches] == ["ttft_p95_ms"]
    assert sum(g.requests for g in verdict.stats.tiers.values()) == len(records)


# --------------------------------------------------------------------------------------------- workloads


def test_json_array_reader_stops_at_a_truncated_tail() -> None:
    text = '[\n {"a": 1},\n {"a": [2, "]"]},\n {"a": 3, "b": "cut off'
    assert list(iter_json_array(io.StringIO(text), chunk_chars=4)) == [{"a": 1}, {"a": [2, "]"]}]
    assert list(iter_json_array(io.StringIO('[{"a": 1}]'))) == [{"a": 1}]
    with pytest.raises(ValueError):
        list(iter_json_array(io.StringIO('{"a": 1}')))


def test_sharegpt_keeps_first_human_turns_with_answers() -> None:
    data = [
        {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello there"}]},
        {"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
        {"conversations": [{"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A"}]},
    ]
    found = load_sharegpt(5, stream=io.StringIO(json.dumps(data)[:-1]))  # the closing bracket is cut off too
    assert [(c.prompt, c.answer_chars) for c in found] == [("Hi?", 11), ("Q2", 1)]


def test_the_packaged_sharegpt_file_reads_incrementally() -> None:
    found = load_sharegpt(20)
    assert len(found) == 20 and all(c.prompt and c.answer_chars > 0 for c in found)


def test_cache_mix_repeats_and_paraphrases_and_routed_mix_has_both_kinds() -> None:
    import random

    workload = Workload(scenario("cache"), max_tokens=32, seed=7)
    rng = random.Random(1)
    names = [workload.next_request(rng).name.replace(" stream", "") for _ in range(400)]
    share = {n: names.count(n) / len(names) for n in set(names)}
    assert share["cache repeat"] > 0.5 and share["cache paraphrase"] > 0.15 and share["cache new"] < 0.25
    body = workload.next_request(rng).body
    assert body["temperature"] == 0 and body["seed"] == 7 and body["max_tokens"] == 32
    routed = Workload(scenario("routed"), max_tokens=32, seed=1)
    specs = [routed.next_request(rng) for _ in range(200)]
    assert {s.name.split()[0] for s in specs} == {"easy", "hard"}
    streamed = sum(s.stream for s in specs) / len(specs)
    assert 0.65 < streamed < 0.95
    assert all(s.body.get("stream_options") == {"include_usage": True} for s in specs if s.stream)


def test_shapes() -> None:
    assert shape_target("constant", 8, 2, 60, 10) == (8, 2)
    assert shape_target("constant", 8, 2, 60, 60) is None
    assert [shape_target("step", 8, 2, 60, t)[0] for t in (0, 16, 31, 59)] == [2, 4, 6, 8]  # type: ignore[index]
    assert shape_target("burst", 8, 2, 60, 5) == (2, 8.0)
    assert shape_target("burst", 8, 2, 60, 27) == (8, 8.0)


def test_durations() -> None:
    assert [parse_duration(t) for t in ("60s", "90", "2m", "1h30m", "1m30s")] == [60, 90, 120, 5400, 90]
    for bad in ("", "abc", "0s", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_every_metric_name_is_reachable() -> None:
    stats = summarize([rec(0, 1.0, stream=True, ttft_s=0.1, itl_s=(0.1,), output_tokens=2)], GoodputCriteria())
    assert set(metric_names()) <= set(stats.overall.metrics)


# ---------------------------------------------------------------------------------------------- capacity


def test_capacity_reports_the_highest_pass_below_the_first_failure() -> None:
    assert capacity_steps(10) == [1, 2, 4, 8, 10]
    assert capacity_steps(1) == [1]
    slo = ScenarioSlo.model_validate({"overall": {"e2e_p95_ms": 1000}, "tiers": {"large": {"e2e_p95_ms": 500}}})

    def step(users: int, small_s: float, large_s: float) -> StepResult:
        records = [rec(i, small_s) for i in range(4)] + [rec(i, large_s, tier="large") for i in range(4)]
        return StepResult(users, judge("chat", records, slo, 10))

    steps = [step(1, 0.1, 0.2), step(2, 0.2, 0.6), step(4, 2.0, 0.3), step(8, 0.1, 0.1)]
    result = summarize_capacity(steps, target_rps=4.0)
    assert [s["passed"] for s in result["steps"]] == [True, False, False, True]
    assert result["overall"]["max_users"] == 1  # step 2 broke tier large; step 8's pass is after a failure
    assert result["overall"]["goodput_rps"] == pytest.approx(0.8)
    assert result["overall"]["copies_for_target"] == 5
    assert result["tiers"]["small"]["max_users"] == 2  # small's own SLOs still held at 2 users
    assert result["tiers"]["large"]["max_users"] == 1


# ------------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--slo", "ttft_p95_ms"], "expected NAME=VALUE"),
        (["--slo", "warp_speed=9"], "unknown metric 'warp_speed'"),
        (["--duration", "soon"], "bad duration"),
        (["--slo-file", "/nonexistent/slo.yaml"], "cannot read SLO file"),
        (["--url", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
    ],
)
def test_cli_errors_are_clear_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["loadtest", "--duration", "5s", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
