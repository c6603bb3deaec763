"""Abuse limits on starting flows at bc-authorize: per client and per login hint.

Every accepted backchannel request starts a real upstream order (a prompt on
someone's phone), so starts are counted, with the ``limits`` library, in two
buckets: one per client and one per login hint (the person). The rates come
from ``start_limits`` of the client, else of its tenant (``limits`` notation,
``"60/minute"``; ``null`` is no limit). Counting uses ``limits``' sliding window
counter: two counters per bucket, no per-request entries.

Storage follows the store: with a Redis store the counters live in the same
Redis (keys under ``<store prefix>limits``), so every replica and worker shares
them; otherwise they are in process memory (one count per worker process).

Over a limit, the answer is HTTP 429 with ``error=slow_down`` and a
``Retry-After`` header in seconds (docs/security.md gives the reasons: CIBA Core 13
defines no code for it, 429 + Retry-After is RFC 6585, and ``slow_down`` is the
OAuth code that tells a client to send less, RFC 8628 3.5). Login hints are
counted under a keyed digest, never in the clear.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError as LimitsStorageError

from ciba_gateway.errors import SlowDownError, StoreError

if TYPE_CHECKING:
    from ciba_gateway.config.model import ClientConfig, StoreConfig, TenantConfig
    from ciba_gateway.connector import LoginHint

__all__ = ["StartLimiter"]

log = structlog.get_logger("ciba_gateway.quota")


@functools.lru_cache(maxsize=64)
def _rate(text: str) -> RateLimitItem:
    return parse(text)


class StartLimiter:
    """Counts bc-authorize starts per client and per login hint; refuses over the limits."""

    def __init__(self, storage: Storage, *, close: Callable[[], Any] | None = None) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._close = close

    @classmethod
    def for_store(cls, config: StoreConfig) -> StartLimiter:
        """Counters in the store's Redis (shared by replicas), else in process memory."""
        scheme = config.url.split(":", 1)[0]
        if scheme not in ("redis", "rediss"):
            return cls(MemoryStorage())
        from redis.asyncio import ConnectionPool

        options: dict[str, Any] = {}
        if config.tls is not None:
            tls = config.tls
            options = {
                "ssl_ca_certs": tls.ca_file,
                "ssl_certfile": tls.cert_file,
                "ssl_keyfile": tls.key_file,
                "ssl_cert_reqs": "required" if tls.verify else "none",
                "ssl_check_hostname": tls.verify,
            }
        pool = ConnectionPool.from_url(
            config.url,
            max_connections=config.pool_size,
            socket_timeout=config.timeout,
            socket_connect_timeout=config.timeout,
            **options,
        )
        storage = RedisStorage(
            config.url,
            implementation="redispy",
            key_prefix=f"{config.prefix}limits",
            wrap_exceptions=True,
            connection_pool=pool,
        )
        return cls(storage, close=pool.disconnect)

    async def aclose(self) -> None:
        """Release the Redis connections, if any."""
        if self._close is not None:
            await self._close()

    async def check(self, tenant: TenantConfig, client: ClientConfig, hint: LoginHint) -> None:
        """Count one start; raise ``SlowDownError`` (429, Retry-After) when over a limit.

        Raises:
            SlowDownError: the client or the login hint started too many flows.
            StoreError: the counters' storage is unreachable.
        """
        limits = client.start_limits or tenant.start_limits
        buckets = (("client", limits.per_client), ("login_hint", limits.per_login_hint))
        for bucket, rate in buckets:
            if rate is None:
                continue
            key = client.client_id if bucket == "client" else _hint_digest(tenant.id, hint)
            item = _rate(rate)
            try:
                if await self._limiter.hit(item, tenant.id, bucket, key):
                    continue
                stats = await self._limiter.get_window_stats(item, tenant.id, bucket, key)
            except LimitsStorageError as exc:
                raise StoreError(f"rate limit storage failed: {type(exc).__name__}") from exc
            # limits keeps its windows in wall-clock time, so Retry-After does too.
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            log.warning(
                "start_limited",
                security_event=True,
                tenant=tenant.id,
                client_id=client.client_id,
                limit=bucket,
                rate=rate,
            )
            who = "this client" if bucket == "client" else "this user"
            raise SlowDownError(
                f"too many authentication requests for {who}; retry after {retry_after} s",
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )


def _hint_digest(tenant_id: str, hint: LoginHint) -> str:
    # Not a secret, just not the raw personal number / phone in a Redis key.
    return hashlib.sha256(f"{tenant_id}\0{hint}".encode()).hexdigest()[:32]
