"""Fixtures of the unit tests: the gateway stack over fake tiers (see gateway_stack.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.gateway_stack import Stack, StackFactory, stack_factory


@pytest.fixture
async def make_stack(redis_url: str, key_prefix: str) -> AsyncIterator[StackFactory]:
    async for factory in stack_factory(redis_url, key_prefix):
        yield factory


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()
