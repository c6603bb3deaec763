"""Build the configured store from ``StoreConfig.url``."""

from __future__ import annotations

import os

from ciba_gateway.config.model import StoreConfig
from ciba_gateway.errors import StoreError
from ciba_gateway.store.base import Store
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.sqlite import SQLiteStore

__all__ = ["create_store"]

_SQLITE_PREFIX = "sqlite:///"


def create_store(config: StoreConfig) -> Store:
    """The store ``config.url`` names, not yet opened.

    ``memory://``: a ``MemoryStore`` (one process only). ``sqlite:///var/g.db``:
    a ``SQLiteStore`` on ``var/g.db`` relative to the working directory, made
    absolute here; ``sqlite:////srv/g.db``: on the absolute path ``/srv/g.db``.

    Raises:
        StoreError: for a malformed URL, or a scheme this build cannot serve.
    """
    url = config.url
    scheme = url.split(":", 1)[0]
    if scheme == "memory":
        if url not in ("memory://", "memory:"):
            raise StoreError(f"a memory store url takes no path: {url!r}")
        return MemoryStore(retention=config.retention)
    if scheme == "sqlite":
        if not url.startswith(_SQLITE_PREFIX) or "?" in url or "#" in url:
            raise StoreError(
                f"a SQLite store url is sqlite:///relative/path.db or sqlite:////abs/path.db,"
                f" got {url!r}"
            )
        path = url[len(_SQLITE_PREFIX) :]
        if not path or path.endswith("/"):
            raise StoreError(f"the SQLite store url names no file: {url!r}")
        return SQLiteStore(os.path.abspath(path), retention=config.retention)
    if scheme in ("redis", "rediss"):
        raise StoreError("the redis store is not available in this build")
    raise StoreError(f"unknown store url scheme {scheme!r}")
