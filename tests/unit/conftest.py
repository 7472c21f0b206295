"""Fixtures of the unit tests: the gateway stack over fake tiers (gateway_stack.py), a fake OpenAI server
(fake_openai.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.unit.fake_openai import serve_fake_openai
from tests.unit.gateway_stack import Stack, StackFactory, stack_factory


@pytest.fixture
async def make_stack(redis_url: str, key_prefix: str) -> AsyncIterator[StackFactory]:
    async for factory in stack_factory(redis_url, key_prefix):
        yield factory


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    yield from serve_fake_openai()
