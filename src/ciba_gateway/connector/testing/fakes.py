"""Fakes of what the gateway gives a connector: a hand-moved clock, sleep, state, deps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ciba_gateway.connector.api import ConnectorDeps, ConnectorState, Outcome, StartRequest

__all__ = ["FakeClock", "FakeSleep", "MemoryState", "Resolutions", "make_deps"]

NOW = 1_760_000_000.0
"""The default start of a ``FakeClock`` (2025-10-09, inside the test certificates' validity)."""


class FakeClock:
    """A clock tests move by hand: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class FakeSleep:
    """An async sleep that records the durations asked for and returns at once.

    With a ``clock`` it also moves that clock, so code that sleeps sees time pass.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


class MemoryState:
    """An inspectable ``ConnectorState`` on a dict: ``data`` maps key -> (value, expiry)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes | int, float]] = {}

    def _live(self, key: str) -> bytes | int | None:
        entry = self.data.get(key)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self.data[key] = (value, self.clock() + ttl)

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    async def take(self, key: str) -> bytes | None:
        value = await self.get(key)
        self.data.pop(key, None)
        return value

    async def incr(self, key: str, ttl: float) -> int:
        value = self._live(key)
        if isinstance(value, int):
            self.data[key] = (value + 1, self.data[key][1])
            return value + 1
        self.data[key] = (1, self.clock() + ttl)
        return 1


class Resolutions:
    """A ``ConnectorDeps.resolve`` that records what the connector settled (``settled``)."""

    def __init__(self) -> None:
        self.settled: list[tuple[str, Outcome]] = []

    async def __call__(self, ref: str, outcome: Outcome) -> bool:
        self.settled.append((ref, outcome))
        return True


async def _no_lookup(ref: str) -> StartRequest | None:
    return None


def make_deps(
    *,
    clock: Callable[[], float] | None = None,
    state: ConnectorState | None = None,
    resolve: Callable[[str, Outcome], Awaitable[bool]] | None = None,
    lookup: Callable[[str], Awaitable[StartRequest | None]] | None = None,
    tenant_id: str = "t1",
    instance_name: str = "connector",
    base_url: str | None = None,
) -> ConnectorDeps:
    """``ConnectorDeps`` as the gateway builds them, with fakes for what is not given.

    Defaults: a ``FakeClock``, a ``MemoryState`` on it, a recording ``Resolutions``
    and a lookup that finds nothing.
    """
    clock = clock or FakeClock()
    return ConnectorDeps(
        tenant_id=tenant_id,
        instance_name=instance_name,
        base_url=base_url or f"http://gw.test/{tenant_id}/{instance_name}",
        state=state or MemoryState(clock),
        resolve=resolve or Resolutions(),
        lookup=lookup or _no_lookup,
        clock=clock,
    )
