"""Fixtures shared by the Redis contract tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_redis_outage import RedisServer, spare_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own on a spare port: no one else's keys or counters."""
    instance = RedisServer(spare_port(), tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
