"""router.data: outcome files (CSV, JSONL, folders), column resolution and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.data import DEFAULT_STRONG, DEFAULT_WEAK, DataError, load_outcomes, load_prompts

GSM8K = Path(__file__).parent.parent / "data" / "routellm_gsm8k_first164.csv"


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_default_columns_are_routellms(tmp_path: Path) -> None:
    file = _csv(tmp_path / "a.csv", f"prompt,{DEFAULT_WEAK},{DEFAULT_STRONG}", ['"q, 1",True,False', "q2,false,TRUE"])
    data = load_outcomes(file)
    assert data.prompts == ["q, 1", "q2"]
    assert data.weak.tolist() == [True, False] and data.strong.tolist() == [False, True]
    assert (data.weak_column, data.strong_column) == (DEFAULT_WEAK, DEFAULT_STRONG)
    assert data.groups == ["a", "a"]


def test_gsm8k_file_loads_as_it_is() -> None:
    # Its columns are named without the organisation and in lower case: matched on the name after the "/".
    data = load_outcomes(GSM8K)
    assert len(data) == 164
    assert data.weak_column == "mixtral-8x7b-instruct-v0.1" and data.strong_column == DEFAULT_STRONG
    assert 0.5 < data.weak.mean() < data.strong.mean()


def test_folder_reads_every_file_in_sorted_order(tmp_path: Path) -> None:
    _csv(tmp_path / "b.csv", "prompt,w,s", ["b1,1,1"])
    _csv(tmp_path / "a.csv", "prompt,w,s", ["a1,0,1", "a2,1,0"])
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_outcomes(tmp_path, weak="w", strong="s")
    assert data.prompts == ["a1", "a2", "b1"] and data.groups == ["a", "a", "b"]
    subset = data.subset(data.weak)
    assert subset.prompts == ["a2", "b1"] and subset.strong.tolist() == [False, True]


def test_jsonl_with_chosen_columns(tmp_path: Path) -> None:
    file = tmp_path / "x.jsonl"
    rows = [{"prompt": "p1", "small_ok": True, "big_ok": True}, {"prompt": "p2", "small_ok": False, "big_ok": True}]
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_outcomes(file, weak="small_ok", strong="big_ok")
    assert data.weak.tolist() == [True, False] and data.strong.tolist() == [True, True]


@pytest.mark.parametrize(
    ("content", "kwargs", "needle"),
    [
        ("question,w,s\nq,1,1\n", {"weak": "w", "strong": "s"}, "no 'prompt' column"),
        ("prompt,w,s\nq,1,1\n", {}, "no weak column 'mistralai/Mixtral-8x7B-Instruct-v0.1' \\(pass --weak"),
        ("prompt,w,s\nq,1,1\n", {"weak": "w", "strong": "t"}, "no strong column 't' \\(check the name"),
        ("prompt,w,s\nq,maybe,1\n", {"weak": "w", "strong": "s"}, "a.csv:2: column 'w' must be True/False"),
        ("prompt,w,s\n,1,1\n", {"weak": "w", "strong": "s"}, "empty or missing prompt"),
        ("prompt,w,s\n", {"weak": "w", "strong": "s"}, "holds no rows"),
    ],
)
def test_bad_csv_files_name_the_problem(tmp_path: Path, content: str, kwargs: dict[str, str], needle: str) -> None:
    file = tmp_path / "a.csv"
    file.write_text(content)
    with pytest.raises(DataError, match=needle):
        load_outcomes(file, **kwargs)


def test_missing_unreadable_and_wrong_kind_of_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_outcomes(tmp_path / "nope.csv")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="expected a .csv or .jsonl"):
        load_outcomes(tmp_path / "data.parquet")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"\n')
    with pytest.raises(DataError, match="bad.jsonl:1: not valid JSON"):
        load_outcomes(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(DataError, match="must be a JSON object"):
        load_outcomes(tmp_path / "list.jsonl")
    (tmp_path / "latin.csv").write_bytes("prompt,w,s\ncaf\xe9,1,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_outcomes(tmp_path / "latin.csv", weak="w", strong="s")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .csv or .jsonl"):
        load_outcomes(empty)


def test_load_prompts_from_text_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("first prompt\n\nsecond prompt\n")
    assert load_prompts(tmp_path / "p.txt") == ["first prompt", "second prompt"]
    assert load_prompts(GSM8K)[0].startswith("Janet’s ducks")
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(DataError, match="p.jsonl:2: no 'prompt' field"):
        load_prompts(tmp_path / "p.jsonl")
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(DataError, match="holds no prompts"):
        load_prompts(tmp_path / "blank.txt")
    with pytest.raises(DataError, match="does not exist"):
        load_prompts(tmp_path / "none.txt")


def test_rows_flagged_in_the_exclude_column_are_left_out(tmp_path: Path) -> None:
    data = tmp_path / "outcomes.csv"
    data.write_text("prompt,weak,strong,contaminated\na,True,True,False\nb,False,True,True\nc,False,False,False\n")
    kept = load_outcomes(data, "weak", "strong", exclude="contaminated")
    assert kept.prompts == ["a", "c"] and kept.strong.tolist() == [True, False]
    with pytest.raises(DataError, match="no column 'dirty'"):
        load_outcomes(data, "weak", "strong", exclude="dirty")
