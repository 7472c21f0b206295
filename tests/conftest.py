"""Fixtures shared by every test layer; stack, Ray and engine fixtures live in each layer's own conftest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from serving.redis_server import LocalRedis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port, shared by the session (tests isolate by key prefix)."""
    with LocalRedis() as server:
        yield server.url


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test alone, so tests sharing the session Redis never see each other."""
    return f"test-{uuid.uuid4().hex[:16]}"
