"""The Locust side: a user that calls the OpenAI API like a client does, the options of a run, the shape,
and the sink that carries every request record to one JSONL file (through the master in distributed runs).

Importing this module imports Locust, which monkey-patches the interpreter with gevent: only
`loadtest/locustfile.py` (run by the `locust` process) imports it, never the `tierserve` CLI.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import httpx
from locust import LoadTestShape, User, task
from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from loadtest.records import RecordWriter, RequestRecord
from loadtest.sse import has_content, sse_chunks
from loadtest.workloads import RequestSpec, Workload, build_workload, scenario, shape_target

__all__ = ["ChatUser", "ScenarioShape", "add_options", "install"]

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: thousands of lines in locust.log that say nothing the records do not
logging.getLogger("httpx").setLevel(logging.WARNING)
_CONTEXT_ATTR = "tierserve_loadtest"  # where the run's shared state hangs on the Locust Environment
_REPORT_KEY = "tierserve_records"
_FINAL_KEY = "tierserve_final"


def add_options(parser: Any) -> None:
    """Locust command-line options of a tierserve run; also editable in the web UI, and sent to workers."""
    parser.add_argument("--scenario", default="chat", help="chat, cache, routed, step, burst, soak")
    parser.add_argument("--api-key", default="", env_var="TIERSERVE_API_KEY", help="Bearer key", is_secret=True)
    parser.add_argument("--model", default="auto", help="model alias to ask for (auto lets the router pick)")
    parser.add_argument("--max-tokens", type=int, default=64, help="cap on output tokens per request")
    parser.add_argument("--records", default="loadtest-records.jsonl", help="JSONL file of per-request records")
    parser.add_argument("--dataset-size", type=int, default=500, help="ShareGPT conversations to sample from")
    parser.add_argument("--think-time", default="0.5,2", help="MIN,MAX seconds a user waits between requests")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds before a request fails")
    parser.add_argument("--run-seed", type=int, default=0, help="request seed; 0: a fresh one per run")
    parser.add_argument(
        "--client-retries",
        type=int,
        default=0,
        help="retries of a request that got no answer (connection error, 408/409/429/5xx), as the openai client "
        "does them (its default is 2); 0: every failure is recorded as it came",
    )


# The options a run's shared state is built from: a new swarm from the web UI that changes one of them
# (another scenario, say) gets a new workload, instead of the first run's going on under the new name.
_CONTEXT_OPTIONS = ("scenario", "model", "max_tokens", "dataset_size", "run_seed", "records")


def context_key(options: Any) -> tuple[str, ...]:
    return tuple(str(getattr(options, name, "")) for name in _CONTEXT_OPTIONS)


@dataclass
class RunContext:
    """State one load-generating process shares between its users."""

    options: Namespace
    workload: Workload
    worker: str
    writer: RecordWriter | None = None  # local runner and master write; workers ship
    pending: list[str] = field(default_factory=list)
    key: tuple[str, ...] = ()

    def add(self, record: RequestRecord) -> None:
        if self.writer is not None:
            self.writer.write([record])
        else:
            self.pending.append(record.to_json())


def _context(environment: Environment) -> RunContext:
    """The run's shared state, built on first use (a worker's users may come before its first spawn message)
    and rebuilt when the options it was built from changed (a new swarm from the web UI)."""
    context = getattr(environment, _CONTEXT_ATTR, None)
    if context is not None and not isinstance(context, RunContext):
        raise TypeError("environment carries no tierserve run context")
    if context is None or context.key != context_key(environment.parsed_options or Namespace()):
        context = _build_context(environment, context)
        setattr(environment, _CONTEXT_ATTR, context)
    return context


def _build_context(environment: Environment, previous: RunContext | None = None) -> RunContext:
    options = environment.parsed_options or Namespace()
    seed = int(getattr(options, "run_seed", 0)) or int(time.time())
    workload = build_workload(
        getattr(options, "scenario", "chat"),
        max_tokens=int(getattr(options, "max_tokens", 64)),
        seed=seed,
        model=getattr(options, "model", "auto"),
        dataset_size=int(getattr(options, "dataset_size", 500)),
    )
    runner = environment.runner
    worker = getattr(runner, "client_id", "") if isinstance(runner, WorkerRunner) else "local"
    writer = previous.writer if previous is not None else None
    if writer is not None and writer.path != Path(options.records):
        writer.close()
        writer = None
    if writer is None and not isinstance(runner, WorkerRunner):
        writer = RecordWriter(Path(options.records))
    pending = previous.pending if previous is not None else []  # a worker's records not yet shipped
    return RunContext(options, workload, worker, writer, pending, context_key(options))


def install(environment: Environment, **_: Any) -> None:
    """Wire the record sink for this process's role (Locust's `init` event)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Records ride on the stats report a worker sends its master every few seconds, and on its last one.
        def report(client_id: str, data: dict[str, Any]) -> None:
            context = getattr(environment, _CONTEXT_ATTR, None)
            if isinstance(context, RunContext) and context.pending:
                data[_REPORT_KEY], context.pending = context.pending, []
            if runner.state == STATE_STOPPED:  # the report after `quit` stopped the users: nothing follows
                data[_FINAL_KEY] = True

        environment.events.report_to_master.add_listener(report)  # type: ignore[no-untyped-call]
        return
    if isinstance(runner, MasterRunner):
        finished: set[str] = set()

        def receive(client_id: str, data: dict[str, Any]) -> None:
            lines = data.get(_REPORT_KEY)
            if lines:
                _context(environment).writer.write_raw(lines)  # type: ignore[union-attr]
            if data.get(_FINAL_KEY):
                finished.add(client_id)

        environment.events.worker_report.add_listener(receive)  # type: ignore[no-untyped-call]
        _wait_for_final_reports(runner, finished)

    def close(**_: Any) -> None:
        context = getattr(environment, _CONTEXT_ATTR, None)
        if isinstance(context, RunContext) and context.writer is not None:
            context.writer.close()

    environment.events.quitting.add_listener(close)  # type: ignore[no-untyped-call]


def _wait_for_final_reports(runner: MasterRunner, finished: set[str]) -> None:
    """At the end of a headless run Locust's master sends its workers `quit` and waits 0.5 s for their last
    reports; a worker sends its last one only once its users stopped, which with `--stop-timeout` is when
    their requests in flight have finished. Those requests (a quarter of a 40 s run, live) reached neither
    the records nor Locust's statistics. The master's `quit` now sends `quit` first and waits for every
    worker's last report (at most the stop timeout and 15 s), then goes on as before."""
    quit_now = runner.quit

    def quit_after_final_reports() -> None:
        workers = [client.id for client in runner.clients.all]
        if workers and runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
            runner.stop(send_stop_to_client=False)
            finished.clear()
            for worker in workers:
                runner.server.send_to_client(Message("quit", None, worker))  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + float(runner.environment.stop_timeout or 0) + 15
            while not finished.issuperset(workers) and time.monotonic() < deadline:
                gevent.sleep(0.2)
        quit_now()

    runner.quit = quit_after_final_reports  # type: ignore[method-assign]


class ChatUser(User):  # type: ignore[misc]
    """One client of the OpenAI API: streams most answers (TTFT = first content chunk), some not."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.tierserve = _context(environment)
        low, _, high = str(getattr(self.tierserve.options, "think_time", "0.5,2")).partition(",")
        self.think = (float(low), float(high or low))
        self.rng = random.Random()
        key = getattr(self.tierserve.options, "api_key", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = float(getattr(self.tierserve.options, "request_timeout", 300.0))
        # httpx, like the official openai client: its stream yields each SSE line as it arrives
        self.http = httpx.Client(base_url=str(self.host or ""), headers=headers, timeout=timeout)

    def wait_time(self) -> float:  # type: ignore[override]
        return self.rng.uniform(*self.think)

    def on_stop(self) -> None:
        self.http.close()

    @task
    def chat(self) -> None:
        spec = self.tierserve.workload.next_request(self.rng)
        record = self._call(spec)
        self.tierserve.add(record)
        exception = RuntimeError(record.error) if record.error else None
        context = {"tier": record.tier, "cache": record.cache}
        kind = "STREAM" if spec.stream else "POST"
        self.environment.events.request.fire(
            request_type=kind,
            name=spec.name,
            response_time=record.e2e_s * 1e3,
            response_length=record.output_tokens,
            exception=exception,
            context=context,
        )
        if record.ttft_s is not None:  # its own row in Locust's UI: TTFT percentiles live, next to e2e
            self.environment.events.request.fire(
                request_type="TTFT",
                name=spec.name,
                response_time=record.ttft_s * 1e3,
                response_length=0,
                exception=None,
                context=context,
            )

    def _call(self, spec: RequestSpec) -> RequestRecord:
        """One request as the client sees it: with --client-retries, a failure before any answer is tried again
        after the openai client's backoff (Retry-After when the server gave one), and the record is the last try's."""
        retries = int(getattr(self.tierserve.options, "client_retries", 0))
        started_at = time.time()
        for attempt in range(retries + 1):
            record = self._attempt(spec)
            if record.ok or attempt == retries or not _retryable(record):
                break
            gevent.sleep(_backoff(record, attempt, self.rng))
        # What the client felt: from its first send to the last try's end, and how many sends it took.
        return dataclasses.replace(record, start=started_at, e2e_s=record.end - started_at, attempts=attempt + 1)

    def _attempt(self, spec: RequestSpec) -> RequestRecord:
        started_at, started = time.time(), time.perf_counter()
        fields: dict[str, Any] = {"status": 0, "ok": False}
        try:
            if spec.stream:
                fields |= self._stream(spec, started)
            else:
                response = self.http.post("/v1/chat/completions", json=spec.body)
                fields |= _headers(response)
                if response.status_code == 200:
                    usage = response.json().get("usage") or {}
                    fields |= {"ok": True, **_usage(usage)}
                else:
                    fields["error"] = f"{response.status_code}: {response.text[:200]}"
        except (httpx.HTTPError, OSError) as error:
            fields["error"] = f"connection: {type(error).__name__}: {error}"[:300]
        except ValueError as error:  # a body that is not the JSON the API promises
            fields |= {"ok": False, "error": f"inband: bad JSON: {error}"[:300]}
        e2e_s = fields.pop("e2e_s", None) or time.perf_counter() - started
        return RequestRecord(
            start=started_at,
            e2e_s=e2e_s,
            scenario=self.tierserve.workload.scenario.name,
            name=spec.name,
            stream=spec.stream,
            users=self.environment.runner.user_count if self.environment.runner else 0,
            worker=self.tierserve.worker,
            **fields,
        )

    def _stream(self, spec: RequestSpec, started: float) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        ttft: float | None = None
        last = 0.0
        gaps: list[float] = []
        with self.http.stream("POST", "/v1/chat/completions", json=spec.body) as response:
            fields |= _headers(response)
            if response.status_code != 200:
                response.read()
                return fields | {"error": f"{response.status_code}: {response.text[:200]}"}
            lines = response.iter_lines()
            for chunk in sse_chunks(lines):
                if "error" in chunk:  # the stream had started: the error arrives in-band
                    return fields | {"error": f"inband: {json.dumps(chunk['error'])[:200]}"}
                if has_content(chunk):
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - started
                    else:
                        gaps.append(now - last)
                    last = now
                if chunk.get("usage"):
                    fields |= _usage(chunk["usage"])
            done = time.perf_counter()  # end to end: send to `[DONE]`
            # Read on to the end of the body, as the openai client does: hanging up at `[DONE]` is, to the
            # server, a client that went away (499) before its stream closed.
            for _ in lines:
                pass
        return fields | {"ok": True, "ttft_s": ttft, "itl_s": tuple(gaps), "e2e_s": done - started}


def _retryable(record: RequestRecord) -> bool:
    """What the openai client retries: no response at all, or 408, 409, 429 and 5xx before the answer began."""
    if record.status == 0:
        return True
    return record.status in (408, 409, 429) or record.status >= 500


def _backoff(record: RequestRecord, attempt: int, rng: random.Random) -> float:
    """The openai client's wait: Retry-After when it is given and at most 60 s, else 0.5 s doubling up to 8 s, with
    up to 25 % jitter taken off."""
    if record.retry_after_s is not None and 0 < record.retry_after_s <= 60:
        return float(record.retry_after_s)
    return min(0.5 * 2.0**attempt, 8.0) * (1 - 0.25 * rng.random())


def _headers(response: httpx.Response) -> dict[str, Any]:
    score = response.headers.get("x-tierserve-route-score")
    try:
        route_score = float(score) if score else None
    except ValueError:
        route_score = None
    try:
        retry_after = float(response.headers.get("retry-after") or "") if response.status_code != 200 else None
    except ValueError:
        retry_after = None
    return {
        "status": response.status_code,
        "request_id": response.headers.get("x-request-id"),
        "retry_after_s": retry_after,
        "tier": response.headers.get("x-tierserve-tier") or "unknown",
        "cache": response.headers.get("x-tierserve-cache") or "unknown",
        "route_score": route_score,
    }


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
    }


class ScenarioShape(LoadTestShape):  # type: ignore[misc]
    """The scenario's shape (constant, step, burst) scaled to --users, --spawn-rate and --run-time."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        options = runner.environment.parsed_options if runner is not None else None
        if options is None:
            return None
        chosen = scenario(options.scenario)
        run_time = float(options.run_time or 0) or chosen.default_duration_s  # None: until stopped (web UI)
        kind = chosen.shape
        elapsed = time.perf_counter() - self.start_time
        return shape_target(kind, int(options.num_users or 1), float(options.spawn_rate or 1), run_time, elapsed)
