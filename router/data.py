"""Routing outcome data: prompts with whether a weak and a strong model answered each correctly.

Read from CSV or JSON lines (one file, or every *.csv / *.jsonl of a folder in sorted order), with a `prompt`
column and two True/False columns. The defaults are the column names of RouteLLM's published outcome files,
matched case-insensitively on the part after the last "/" so its MMLU and GSM8K files both load as they are.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from router.errors import RouterError

__all__ = ["DEFAULT_STRONG", "DEFAULT_WEAK", "DataError", "OutcomeSet", "load_outcomes", "load_prompts"]

DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
DEFAULT_STRONG = "gpt-4-1106-preview"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class DataError(RouterError):
    """An outcome or prompt file is missing, malformed or lacks a column."""


@dataclass(frozen=True)
class OutcomeSet:
    prompts: list[str]
    weak: NDArray[np.bool_]  # the weak model answered correctly
    strong: NDArray[np.bool_]
    groups: list[str]  # the file each row came from (its stem: the MMLU subject)
    weak_column: str
    strong_column: str

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, mask: NDArray[np.bool_]) -> OutcomeSet:
        keep = np.flatnonzero(mask)
        return OutcomeSet(
            prompts=[self.prompts[i] for i in keep],
            weak=self.weak[keep],
            strong=self.strong[keep],
            groups=[self.groups[i] for i in keep],
            weak_column=self.weak_column,
            strong_column=self.strong_column,
        )


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".jsonl") and p.is_file())
        if not files:
            raise DataError(f"{path} holds no .csv or .jsonl files")
        return files
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    if path.suffix not in (".csv", ".jsonl"):
        raise DataError(f"{path}: expected a .csv or .jsonl file")
    return [path]


def _rows(file: Path) -> Iterator[tuple[int, dict[str, object]]]:
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            if file.suffix == ".csv":
                # Outcome files carry whole model answers in their cells.
                csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    yield number, dict(row)
                return
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{file}:{number}: not valid JSON: {error.msg}") from None
                if not isinstance(record, dict):
                    raise DataError(f"{file}:{number}: each line must be a JSON object")
                yield number, record
    except OSError as error:
        raise DataError(f"cannot read {file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"{file} is not UTF-8 text") from None
    except csv.Error as error:
        raise DataError(f"{file}: malformed CSV: {error}") from None


def _resolve(wanted: str, columns: list[str], explicit: bool, file: Path, role: str) -> str:
    if wanted in columns:
        return wanted
    if not explicit:
        tail = wanted.rsplit("/", 1)[-1].lower()
        matches = [c for c in columns if c.rsplit("/", 1)[-1].lower() == tail]
        if len(matches) == 1:
            return matches[0]
    hint = f"pass --{role} COLUMN" if not explicit else "check the name"
    raise DataError(f"{file}: no {role} column '{wanted}' ({hint}); columns: {', '.join(columns)}")


def _flag(value: object, file: Path, line: int, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{file}:{line}: column '{column}' must be True/False, got {value!r}")


def load_outcomes(
    path: Path, weak: str | None = None, strong: str | None = None, exclude: str | None = None
) -> OutcomeSet:
    """Every row of the file(s) at `path`; `weak`/`strong` name the correctness columns. With `exclude`, rows
    whose True/False column of that name is True are left out (RouteLLM's `contaminated` GSM8K prompts)."""
    prompts: list[str] = []
    weak_flags: list[bool] = []
    strong_flags: list[bool] = []
    groups: list[str] = []
    weak_column = strong_column = ""
    for file in _files(Path(path)):
        resolved: tuple[str, str] | None = None
        for line, row in _rows(file):
            if resolved is None:
                columns = list(row)
                if "prompt" not in columns:
                    raise DataError(f"{file}: no 'prompt' column; columns: {', '.join(columns)}")
                resolved = (
                    _resolve(weak or DEFAULT_WEAK, columns, weak is not None, file, "weak"),
                    _resolve(strong or DEFAULT_STRONG, columns, strong is not None, file, "strong"),
                )
                weak_column, strong_column = resolved
            prompt = row.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise DataError(f"{file}:{line}: empty or missing prompt")
            if exclude is not None:
                if exclude not in row:
                    raise DataError(f"{file}: no column '{exclude}' to exclude by; columns: {', '.join(row)}")
                if _flag(row.get(exclude), file, line, exclude):
                    continue
            prompts.append(prompt)
            weak_flags.append(_flag(row.get(resolved[0]), file, line, resolved[0]))
            strong_flags.append(_flag(row.get(resolved[1]), file, line, resolved[1]))
            groups.append(file.stem)
    if not prompts:
        raise DataError(f"{path} holds no rows")
    return OutcomeSet(
        prompts=prompts,
        weak=np.array(weak_flags, dtype=bool),
        strong=np.array(strong_flags, dtype=bool),
        groups=groups,
        weak_column=weak_column,
        strong_column=strong_column,
    )


def load_prompts(path: Path) -> list[str]:
    """Prompts for calibration: a .csv or .jsonl with a `prompt` field, or plain text with one prompt a line."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file} does not exist")
    if file.suffix in (".csv", ".jsonl"):
        prompts = []
        for line, row in _rows(file):
            prompt = row.get("prompt")
            if not isinstance(prompt, str):
                raise DataError(f"{file}:{line}: no 'prompt' field")
            prompts.append(prompt)
    else:
        try:
            prompts = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read {file}: {error}") from None
    if not prompts:
        raise DataError(f"{file} holds no prompts")
    return prompts
