"""Locust entry point of the tierserve SLO suites.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --scenario chat           # web UI
    locust -f loadtest/locustfile.py --headless -u 4 -r 2 -t 60s --host URL --records r.jsonl
    locust -f loadtest/locustfile.py --master ...   /   locust -f loadtest/locustfile.py --worker --master-host H

`tierserve loadtest` runs this file headless and judges the records against an SLO file (docs/loadtest.md).
"""

from __future__ import annotations

from typing import Any

from locust import events

from loadtest.users import ChatUser, ScenarioShape, add_options, install

__all__ = ["ChatUser", "ScenarioShape"]


def _options(parser: Any, **_: Any) -> None:
    add_options(parser)


def _init(environment: Any, **kwargs: Any) -> None:
    install(environment, **kwargs)


# Registered when Locust imports this file: the one place that wires tierserve into Locust's events.
events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_init)  # type: ignore[no-untyped-call]
