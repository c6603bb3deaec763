"""Build the configured store from ``StoreConfig.url``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ciba_gateway.config.model import StoreConfig
from ciba_gateway.errors import StoreError
from ciba_gateway.store.base import Store
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.sqlite import SQLiteStore

__all__ = ["create_store"]

_SQLITE_PREFIX = "sqlite:///"


def create_store(config: StoreConfig, *, clock: Callable[[], float] = time.time) -> Store:
    """The store ``config.url`` names, not yet opened.

    ``memory://``: a ``MemoryStore`` (one process only). ``sqlite:///var/g.db``:
    a ``SQLiteStore`` on ``var/g.db`` relative to the working directory, made
    absolute here; ``sqlite:////srv/g.db``: on the absolute path ``/srv/g.db``.
    ``redis://host:6379/0`` / ``rediss://...``: a ``RedisStore`` shared by replicas,
    with the config's prefix, pool, timeout, retries and TLS options.

    Raises:
        StoreError: for a malformed URL, or a scheme this build cannot serve.
    """
    url = config.url
    scheme = url.split(":", 1)[0]
    if scheme == "memory":
        if url not in ("memory://", "memory:"):
            raise StoreError(f"a memory store url takes no path: {url!r}")
        return MemoryStore(retention=config.retention, clock=clock)
    if scheme == "sqlite":
        if not url.startswith(_SQLITE_PREFIX) or "?" in url or "#" in url:
            raise StoreError(
                f"a SQLite store url is sqlite:///relative/path.db or sqlite:////abs/path.db,"
                f" got {url!r}"
            )
        path = url[len(_SQLITE_PREFIX) :]
        if not path or path.endswith("/"):
            raise StoreError(f"the SQLite store url names no file: {url!r}")
        return SQLiteStore(os.path.abspath(path), retention=config.retention, clock=clock)
    if scheme in ("redis", "rediss"):
        return _redis_store(config, clock)
    raise StoreError(f"unknown store url scheme {scheme!r}")


def _redis_store(config: StoreConfig, clock: Callable[[], float]) -> Store:
    # Imported here so that deployments on SQLite never load redis-py.
    from ciba_gateway.store.redis import RedisStore

    ssl: dict[str, object] = {}
    if config.tls is not None:
        tls = config.tls
        ssl = {
            "ssl_ca_certs": tls.ca_file,
            "ssl_certfile": tls.cert_file,
            "ssl_keyfile": tls.key_file,
            "ssl_cert_reqs": "required" if tls.verify else "none",
            "ssl_check_hostname": tls.verify,
        }
    return RedisStore(
        config.url,
        retention=config.retention,
        prefix=config.prefix,
        pool_size=config.pool_size,
        timeout=config.timeout,
        retries=config.retries,
        ssl=ssl,
        clock=clock,
    )
