"""The namespaced value store: a store's small values, one declared namespace at a time.

Backends implement ``ValueStore`` with the namespace as the first argument of every
method; the rest of the gateway holds ``Values`` and opens a ``Namespace`` for a
name from ``store.namespaces``, whose methods take only keys:

    used = values.namespace(namespaces.refresh_used(tenant.id))
    if await used.get(key) is not None: ...

A plain string is refused, so every namespace in use is one declared there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ciba_gateway.store.namespaces import Name

if TYPE_CHECKING:
    from ciba_gateway.store.base import Value, ValueStore

__all__ = ["Namespace", "Values"]


class Namespace:
    """One declared namespace of a value store; also a connector's ``ConnectorState``."""

    __slots__ = ("_store", "name")

    def __init__(self, store: ValueStore, name: Name) -> None:
        if not isinstance(name, Name):
            raise TypeError(f"{name!r} is not a namespace declared in store/namespaces.py")
        self._store = store
        self.name = name

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` once; True the first time, False while it is remembered (jti replay)."""
        return await self._store.remember(self.name, key, ttl)

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        await self._store.put_value(self.name, key, value, ttl)

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent or expired."""
        return await self._store.get_value(self.name, key)

    async def swap(self, key: str, value: bytes, ttl: float) -> bytes | None:
        """Store ``value`` and return the live value it replaced (``ValueStore.swap_value``)."""
        return await self._store.swap_value(self.name, key, value, ttl)

    async def take(self, key: str) -> bytes | None:
        """Atomically read and delete ``key`` (single use)."""
        return await self._store.take_value(self.name, key)

    async def incr(self, key: str, ttl: float) -> int:
        """Atomically add one to a counter that expires ``ttl`` seconds after creation."""
        return await self._store.incr(self.name, key, ttl)

    def value(self, key: str, value: bytes, ttl: float) -> Value:
        """A ``put`` not made yet: for ``Store.transition``, which writes it with the request."""
        return (self.name, key, value, ttl)


class Values:
    """A store's value space (replay caches, tokens, connector state), by declared namespace."""

    __slots__ = ("_store",)

    def __init__(self, store: ValueStore) -> None:
        self._store = store

    def namespace(self, name: Name) -> Namespace:
        """The view of namespace ``name`` (one of ``store.namespaces``)."""
        return Namespace(self._store, name)

    async def put(self, value: Value) -> None:
        """Write now a value made by ``Namespace.value`` that no transition carries."""
        name, key, data, ttl = value
        await self.namespace(name).put(key, data, ttl)
