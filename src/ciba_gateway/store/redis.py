"""The scale-out store: several gateway replicas share one Redis (or Valkey).

Every method is one command (``purge_expired``: one per 500 entries): a
plain command for values and reads, a Lua script (``EVALSHA``; on ``NOSCRIPT``
the script is loaded and that command alone sent again) wherever a change
touches more than one key or must compare before it writes. A script runs
atomically on the server, so compare-and-set holds across any number of
replicas without locks or ``WATCH`` retries.

Auto-pipelining: the commands that the tasks of one event-loop turn issue go
out together, as one pipeline (no ``MULTI``) on one pooled connection, so a
busy worker pays one connection checkout, one write and one read for many
requests instead of one each. Each caller gets its own reply or its own error;
the commands of a batch run in the order they were issued.

Keys (``P`` is the configured prefix, default ``ciba:``)::

    P{req}:r:<auth_req_id>   hash  d=msgpack AuthRequest, v=version, e=expires_at,
                                   s=status, n=next_poll_at, lu=lease_until, lo=lease_owner;
                                   token-poll pacing: c=poller, pi=interval, pl=last poll
    P{req}:due               zset  auth_req_id scored by max(next_poll_at, lease_until)
    P{req}:pending           zset  pending auth_req_ids scored by expires_at
    P{req}:lease:<owner>     set   auth_req_ids a driver holds a lease on
    Pv:<len(ns)>:<ns>:<key>  string  a small value: tag, logical deadline, payload

Leasing without re-encoding: ``lease_due`` must bump ``version`` and set the
lease, which live inside the msgpack blob, and Lua cannot rewrite msgpack
cheaply. So the hash fields ``v``, ``lo`` and ``lu`` are authoritative and
``get`` patches them into the decoded blob (one ``HMGET``, still one round
trip). ``lease_due`` and ``release_leases`` change only those fields;
``transition`` compares ``v`` and rewrites blob and fields together. Every
index (``due``, ``pending``, the lease sets) is updated in the same script as
the hash, so they never disagree with it.

Time: the store compares logical times from the injected clock, exactly like
the memory and SQLite stores (a request is gone when ``expires_at < now -
retention``; a value when its deadline ``<= now``). Redis's own expiry is the
garbage collector behind that: every key gets a TTL of its remaining logical
life plus ``GRACE`` seconds, so a replica whose clock runs a little behind
never finds a key gone early. Index keys get the TTL of their longest-lived
member. ``purge_expired`` therefore only removes pending requests past
retention (and their index entries) that Redis has not collected yet;
everything else Redis expires by itself.

Failures: every Redis error becomes ``StoreError`` (the web layer answers 503
``temporarily_unavailable``). Connecting (and the health check of a connection
idle for 10 s) is retried a bounded number of times with jittered backoff by
redis-py. Once a batch has been sent, a broken connection fails every caller
still waiting, and a command is sent again (``retries`` times, with the same
backoff) only after a *connection* error, never after a timeout, and only
where running it twice is harmless or fails safe: reads, ``put_value``,
``release_leases`` and ``purge_expired`` are idempotent; a replayed
compare-and-set finds its own version and returns False, ``create`` reports
the id as taken, ``remember``/``take_value`` report the key as used, ``incr``
counts one more, and a lost ``lease_due`` batch waits out its lease - nothing
is applied twice in the caller's favour. ``poll`` and ``swap_value`` are never
sent again: a replayed poll would find its own poll too early and answer
``slow_down`` (growing the interval) to a client that polled on time, and a
replayed swap would return the value it had just written as the one it
replaced. Their callers get ``StoreError``.

Redis Cluster is not supported by this client (see docs/deployment.md): the
request keys share the ``{req}`` hash tag, so they would fit one cluster slot
(which puts all request state on one shard anyway), but ``transition`` also
sets the values that go with a redeem (the access token's record) in its script.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import msgspec
import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ciba_gateway.errors import StoreError
from ciba_gateway.flow.model import AuthRequest
from ciba_gateway.store.base import Polled, Value, poller

__all__ = ["GRACE", "RedisStore"]

log = structlog.get_logger("ciba_gateway.store")

GRACE = 30.0
"""Seconds every key outlives its logical expiry (clock skew between replicas)."""

_PURGE_BATCH = 500
_HEALTH_CHECK_INTERVAL = 10
"""Seconds a pooled connection may idle before it is PINGed ahead of the next command."""


class _Script(NamedTuple):
    """A Lua script and the SHA1 ``EVALSHA`` names it by."""

    source: str
    sha: str


def _script(source: str) -> _Script:
    return _Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


# Shared by create and transition: write the hash and every index in one go.
_WRITE = """
local function keep_ttl(key, ttl)
  if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
local function write(req, due, pending, a, old_owner)
  local id, blob, version, expires, status = ARGV[a], ARGV[a+1], ARGV[a+2], ARGV[a+3], ARGV[a+4]
  local next_poll, lease_until, owner = ARGV[a+5], ARGV[a+6], ARGV[a+7]
  local score, ttl, lease_prefix, lease_ttl = ARGV[a+8], ARGV[a+9], ARGV[a+10], ARGV[a+11]
  -- HDEL, not DEL: the pacing fields (c, pi, pl) outlive every write.
  redis.call('HDEL', req, 'n', 'lu', 'lo')
  local fields = {'d', blob, 'v', version, 'e', expires, 's', status}
  if next_poll ~= '' then fields[#fields+1] = 'n'; fields[#fields+1] = next_poll end
  if lease_until ~= '' then fields[#fields+1] = 'lu'; fields[#fields+1] = lease_until end
  if owner ~= '' then fields[#fields+1] = 'lo'; fields[#fields+1] = owner end
  redis.call('HSET', req, unpack(fields))
  redis.call('PEXPIRE', req, ttl)
  if score ~= '' then
    redis.call('ZADD', due, score, id)
    keep_ttl(due, ttl)
  else
    redis.call('ZREM', due, id)
  end
  if status == 'pending' then
    redis.call('ZADD', pending, expires, id)
    keep_ttl(pending, ttl)
  else
    redis.call('ZREM', pending, id)
  end
  if old_owner and old_owner ~= owner then redis.call('SREM', lease_prefix .. old_owner, id) end
  if owner ~= '' then
    redis.call('SADD', lease_prefix .. owner, id)
    keep_ttl(lease_prefix .. owner, lease_ttl)
  end
end
"""

_CREATE = _script(
    _WRITE
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
write(KEYS[1], KEYS[2], KEYS[3], 1, false)
redis.call('HSET', KEYS[1], 'c', ARGV[13], 'pi', ARGV[14])
return 1
"""
)

_TRANSITION = _script(
    _WRITE
    + """
local cur = redis.call('HMGET', KEYS[1], 'v', 'e', 'lo')
if not cur[1] or cur[1] ~= ARGV[1] or tonumber(cur[2]) < tonumber(ARGV[2]) then return 0 end
write(KEYS[1], KEYS[2], KEYS[3], 3, cur[3])
-- The values that go with the transition: KEYS[4..], (value, ttl ms) from ARGV[17..].
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 * i + 9], 'PX', ARGV[2 * i + 10])
end
return 1
"""
)

# KEYS: request hash. ARGV: now, cutoff, poller, jitter, step. Returns blob, version,
# lease owner, lease until, grown interval ('' unless this poll came too early), or nil.
_POLL = _script(
    """
local f = redis.call('HMGET', KEYS[1], 'd', 'v', 'e', 'lo', 'lu', 's', 'c', 'pi', 'pl')
if not f[1] or tonumber(f[3]) < tonumber(ARGV[2]) then return nil end
local now, slowed = tonumber(ARGV[1]), ''
if f[6] == 'pending' and tonumber(f[3]) > now and f[7] == ARGV[3] and f[8] then
  local interval = tonumber(f[8])
  if f[9] and now - tonumber(f[9]) < interval - tonumber(ARGV[4]) then
    interval = interval + tonumber(ARGV[5])
    slowed = tostring(interval)
    redis.call('HSET', KEYS[1], 'pl', ARGV[1], 'pi', slowed)
  else
    redis.call('HSET', KEYS[1], 'pl', ARGV[1])
  end
end
return {f[1], f[2], f[4] or '', f[5] or '', slowed}
"""
)

# KEYS: due, lease set of owner. ARGV: now, cutoff, owner, lease_until, limit,
# request key prefix, lease set ttl (ms). Returns blob, version pairs, earliest first.
_LEASE_DUE = _script(
    """
local now, cutoff, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local still_due = tonumber(ARGV[4]) <= now
local out, leased, kept = {}, 0, 0
while leased < limit do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', kept, limit - leased)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local key = ARGV[6] .. id
    local f = redis.call('HMGET', key, 'e', 'lu', 'd')
    if not f[1] or tonumber(f[1]) < cutoff then
      redis.call('ZREM', KEYS[1], id)
    elseif f[2] and tonumber(f[2]) >= now then
      kept = kept + 1
    else
      local version = redis.call('HINCRBY', key, 'v', 1)
      redis.call('HSET', key, 'lo', ARGV[3], 'lu', ARGV[4])
      redis.call('ZADD', KEYS[1], ARGV[4], id)
      redis.call('SADD', KEYS[2], id)
      out[#out+1] = f[3]
      out[#out+1] = version
      leased = leased + 1
      if still_due then kept = kept + 1 end
    end
  end
end
if leased > 0 and redis.call('PTTL', KEYS[2]) < tonumber(ARGV[7]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return out
"""
)

# KEYS: lease set of owner, due. ARGV: owner, request key prefix.
_RELEASE = _script(
    """
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. id
  local f = redis.call('HMGET', key, 'lo', 'n')
  if f[1] == ARGV[1] then
    redis.call('HINCRBY', key, 'v', 1)
    redis.call('HDEL', key, 'lo', 'lu')
    if f[2] then redis.call('ZADD', KEYS[2], f[2], id) else redis.call('ZREM', KEYS[2], id) end
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
"""
)

# KEYS: pending, due. ARGV: cutoff, request key prefix, batch.
# Returns {requests deleted, index entries visited}.
_PURGE = _script(
    """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[3])
local n = 0
for _, id in ipairs(ids) do
  local key = ARGV[2] .. id
  local e = redis.call('HGET', key, 'e')
  if e and tonumber(e) < tonumber(ARGV[1]) then n = n + redis.call('DEL', key) end
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return {n, #ids}
"""
)

# Values are "<tag><deadline>\n<payload>"; tag v = value, r = remembered, c = counter.
_HEAD = """
local function deadline(raw)
  local nl = string.find(raw, '\\n', 1, true)
  if not nl then return nil, nil end
  return tonumber(string.sub(raw, 2, nl - 1)), nl
end
"""

# KEYS: value key. ARGV: now, new value, physical ttl (ms).
_REMEMBER = _script(
    _HEAD
    + """
local raw = redis.call('GET', KEYS[1])
if raw then
  local until_ = deadline(raw)
  if until_ and until_ > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
)

# KEYS: value key. ARGV: now, header of a fresh counter, physical ttl (ms).
_INCR = _script(
    _HEAD
    + """
local raw = redis.call('GET', KEYS[1])
if raw and string.sub(raw, 1, 1) == 'c' then
  local until_, nl = deadline(raw)
  if until_ and until_ > tonumber(ARGV[1]) then
    local count = tonumber(string.sub(raw, nl + 1)) + 1
    redis.call('SET', KEYS[1], string.sub(raw, 1, nl) .. count, 'KEEPTTL')
    return count
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. '1', 'PX', ARGV[3])
return 1
"""
)


def _num(value: float | None) -> str:
    """A float as the exact text Redis and Lua parse back to the same double."""
    return "" if value is None else repr(float(value))


def _due_score(request: AuthRequest) -> float | None:
    """When the request may next be leased: ``max(next_poll_at, lease_until)``; None if never."""
    if request.next_poll_at is None:
        return None
    if request.lease_until is not None and request.lease_until > request.next_poll_at:
        return request.lease_until
    return request.next_poll_at


def _ms(seconds: float) -> int:
    """Milliseconds for ``PX``/``PEXPIRE``, at least 1 (``SET ... PX 0`` is an error)."""
    return max(1, math.ceil(seconds * 1000))


class _Lost(Exception):
    """A command's connection failed; ``may_have_run`` once its batch began to be sent."""

    def __init__(self, error: BaseException, *, may_have_run: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.may_have_run = may_have_run


class _AutoPipeline:
    """Sends the commands issued within one event-loop turn as one pipeline on one connection.

    ``call`` queues a command and returns a future for its own reply; the first
    command of a turn schedules a flush, which runs once the tasks of this turn
    have yielded. A flush checks out one pooled connection, writes every queued
    command in one go and reads the replies in order: an error reply fails only
    its own future, a broken connection fails every future not yet answered
    with ``_Lost``. Batches of consecutive turns may be in flight at once, each
    on its own connection.
    """

    def __init__(self, pool: BlockingConnectionPool) -> None:
        self._pool = pool
        self._queued: list[tuple[tuple[str | bytes, ...], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    def call(self, *args: str | bytes) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply, its error reply or ``_Lost``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            flush = loop.create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        self._queued.append((args, future))
        return future

    async def drain(self) -> None:
        """Wait until every batch in flight is answered or failed."""
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def _flush(self) -> None:
        batch, self._queued = self._queued, []
        try:
            # Connecting and the idle health check retry by redis-py's own policy.
            connection = await self._pool.get_connection()
        except BaseException as exc:
            _fail(batch, exc, may_have_run=False)
            if not isinstance(exc, Exception):
                raise
            return
        answered = 0
        sending = False
        try:
            await connection.check_health()
            sending = True
            await connection.send_packed_command(
                connection.pack_commands([args for args, _ in batch]), check_health=False
            )
            for _, future in batch:
                try:
                    reply = await connection.read_response()
                except ResponseError as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(reply)
                answered += 1
        except BaseException as exc:
            # redis-py has disconnected the connection: the replies left are lost.
            _fail(batch[answered:], exc, may_have_run=sending)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._pool.release(connection)


def _fail(
    batch: Sequence[tuple[Any, asyncio.Future[Any]]], error: BaseException, *, may_have_run: bool
) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(_Lost(error, may_have_run=may_have_run))


class RedisStore:
    """The ``Store`` protocol on Redis / Valkey (6.2 or later), shared by many replicas.

    Args:
        url: ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS).
        retention: seconds a request stays readable after its ``expires_at``.
        prefix: prepended to every key, so deployments can share one server.
        pool_size: most connections this process opens; callers beyond it wait.
        timeout: seconds for connecting, for one command and for a free connection.
        retries: extra attempts after a connection error, with jittered backoff.
        ssl: TLS options passed to redis-py for ``rediss://`` (``ssl_ca_certs``, ...).
        grace: seconds every key outlives its logical expiry before Redis drops it.
        clock: returns the current time in seconds (injectable for tests).
    """

    def __init__(
        self,
        url: str,
        *,
        retention: float = 3600,
        prefix: str = "ciba:",
        pool_size: int = 64,
        timeout: float = 2.0,
        retries: int = 2,
        ssl: dict[str, Any] | None = None,
        grace: float = GRACE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("redis://", "rediss://")):
            raise StoreError(f"a Redis store url starts with redis:// or rediss://, got {url!r}")
        if ssl and not url.startswith("rediss://"):
            raise StoreError("TLS options need a rediss:// url")
        self.url = url
        self.retention = retention
        self.prefix = prefix
        self.pool_size = pool_size
        self.timeout = timeout
        self.retries = retries
        self._ssl = dict(ssl or {})
        self.grace = grace
        self._clock = clock
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AuthRequest)
        self._request_prefix = f"{prefix}{{req}}:r:"
        self._lease_prefix = f"{prefix}{{req}}:lease:"
        self._due = f"{prefix}{{req}}:due"
        self._pending = f"{prefix}{{req}}:pending"
        self._pool: BlockingConnectionPool | None = None
        self._client: Redis | None = None
        self._pipeline: _AutoPipeline | None = None
        self._backoff = ExponentialWithJitterBackoff(cap=1.0, base=0.05)

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Build the connection pool and check the server; an unreachable one is only logged.

        The app starts and reports not-ready (``/readyz``) until Redis answers,
        instead of crash-looping while Redis restarts.
        """
        if self._client is not None:
            return
        options: dict[str, Any] = {
            "max_connections": self.pool_size,
            "timeout": self.timeout,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "health_check_interval": _HEALTH_CHECK_INTERVAL,
            "retry": Retry(self._backoff, self.retries, supported_errors=(RedisConnectionError,)),
            "client_name": "ciba-gateway",
            **self._ssl,
        }
        try:
            self._pool = BlockingConnectionPool.from_url(self.url, **options)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"invalid Redis store url or options: {exc}") from exc
        self._client = Redis(connection_pool=self._pool)
        self._pipeline = _AutoPipeline(self._pool)
        if not await self.ping():
            log.warning("redis_unreachable_at_start", url=_redacted(self.url))

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        client, pool, pipeline = self._client, self._pool, self._pipeline
        self._client = self._pool = self._pipeline = None
        if pipeline is not None:
            await pipeline.drain()
        if client is not None:
            await client.aclose()
        if pool is not None:
            await pool.aclose()

    async def ping(self) -> bool:
        """True when Redis answers PING."""
        if self._client is None:
            return False
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    # --- requests ---------------------------------------------------------

    async def create(self, request: AuthRequest) -> None:
        """Insert a new request; raises StoreError if ``auth_req_id`` exists."""
        with self._errors():
            created = await self._run(
                _CREATE, self._request_keys(request.auth_req_id), self._write_args(request)
            )
        if not created:
            raise StoreError("auth_req_id already exists")

    async def get(self, auth_req_id: str) -> AuthRequest | None:
        """The request, or None when unknown or past its retention (one HMGET)."""
        with self._errors():
            blob, version, expires_at, owner, lease_until = await self._execute(
                "HMGET", self._request_prefix + auth_req_id, "d", "v", "e", "lo", "lu"
            )
        if blob is None or float(expires_at) < self._clock() - self.retention:
            return None
        request = self._decoder.decode(blob)
        return _with_lease_fields(request, version, owner, lease_until)

    async def poll(
        self, auth_req_id: str, owner: str, now: float, jitter: float, step: int
    ) -> Polled | None:
        """The request for a token poll, the poll recorded when it is pending: one script."""
        cutoff = self._clock() - self.retention
        with self._errors():
            reply = await self._run(
                _POLL,
                [self._request_prefix + auth_req_id],
                [_num(now), _num(cutoff), owner, _num(jitter), str(step)],
                resend=False,
            )
        if reply is None:
            return None
        blob, version, lease_owner, lease_until, slowed = reply
        request = _with_lease_fields(
            self._decoder.decode(blob), version, lease_owner or None, lease_until or None
        )
        return request, int(slowed) if slowed else None

    async def transition(self, new: AuthRequest, values: Sequence[Value] = ()) -> bool:
        """Replace the stored request whose version is ``new.version - 1`` with ``new``.

        ``values`` are SET by the same script once the compare-and-set won.
        """
        now = self._clock()
        keys = self._request_keys(new.auth_req_id)
        args = [str(new.version - 1), _num(now - self.retention), *self._write_args(new)]
        for namespace, key, value, ttl in values:
            keys.append(self._value_key(namespace, key))
            args += [_header(b"v", now + ttl) + value, str(_ms(ttl + self.grace))]
        with self._errors():
            written = await self._run(_TRANSITION, keys, args)
        return bool(written)

    async def lease_due(
        self, now: float, owner: str, lease_seconds: float, limit: int
    ) -> list[AuthRequest]:
        """Lease up to ``limit`` requests whose ``next_poll_at <= now``, earliest first."""
        if limit <= 0:
            return []
        lease_until = now + lease_seconds
        with self._errors():
            reply = await self._run(
                _LEASE_DUE,
                [self._due, self._lease_prefix + owner],
                [
                    _num(now),
                    _num(now - self.retention),
                    owner,
                    _num(lease_until),
                    str(limit),
                    self._request_prefix,
                    str(_ms(lease_seconds + self.grace)),
                ],
            )
        return [
            msgspec.structs.replace(
                self._decoder.decode(blob),
                version=int(version),
                lease_owner=owner,
                lease_until=lease_until,
            )
            for blob, version in zip(reply[::2], reply[1::2], strict=True)
        ]

    async def release_leases(self, owner: str) -> int:
        """Clear every lease ``owner`` holds; bumps the version of each request it frees."""
        keys = [self._lease_prefix + owner, self._due]
        with self._errors():
            return int(await self._run(_RELEASE, keys, [owner, self._request_prefix]))

    async def purge_expired(self, now: float) -> int:
        """Delete pending requests past retention that Redis has not expired yet.

        Terminal requests and values are left to Redis's own expiry (every key
        has a TTL), so they are not counted here.
        """
        purged = 0
        cutoff = _num(now - self.retention)
        with self._errors():
            while True:
                deleted, visited = await self._run(
                    _PURGE,
                    [self._pending, self._due],
                    [cutoff, self._request_prefix, str(_PURGE_BATCH)],
                )
                purged += int(deleted)
                if int(visited) < _PURGE_BATCH:
                    return purged

    async def count_pending(self) -> int:
        """How many retained requests are pending (ZCOUNT on the pending index)."""
        cutoff = self._clock() - self.retention
        with self._errors():
            return int(await self._execute("ZCOUNT", self._pending, _num(cutoff), "+inf"))

    # --- small values -----------------------------------------------------

    async def remember(self, namespace: str, key: str, ttl: float) -> bool:
        """Record ``key`` once; True the first time, False while it is remembered."""
        now = self._clock()
        with self._errors():
            first = await self._run(
                _REMEMBER,
                [self._value_key(namespace, key)],
                [_num(now), _header(b"r", now + ttl), str(_ms(ttl + self.grace))],
            )
        return bool(first)

    async def put_value(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store a small value that expires after ``ttl`` seconds."""
        raw = _header(b"v", self._clock() + ttl) + value
        with self._errors():
            await self._execute(
                "SET", self._value_key(namespace, key), raw, "PX", str(_ms(ttl + self.grace))
            )

    async def get_value(self, namespace: str, key: str) -> bytes | None:
        """A stored value, or None when absent or expired."""
        with self._errors():
            raw = await self._execute("GET", self._value_key(namespace, key))
        return self._payload(raw)

    async def swap_value(self, namespace: str, key: str, value: bytes, ttl: float) -> bytes | None:
        """Store ``value`` (expiring after ``ttl`` s); return the live value it replaced.

        ``SET ... PX ... GET``: one round trip, atomic across replicas (Redis >= 6.2).
        """
        raw = _header(b"v", self._clock() + ttl) + value
        with self._errors():
            old = await self._execute(
                "SET",
                self._value_key(namespace, key),
                raw,
                "PX",
                str(_ms(ttl + self.grace)),
                "GET",
                resend=False,
            )
        return self._payload(old)

    async def take_value(self, namespace: str, key: str) -> bytes | None:
        """Atomically read and delete a value (GETDEL: single use across replicas)."""
        with self._errors():
            raw = await self._execute("GETDEL", self._value_key(namespace, key))
        return self._payload(raw)

    async def incr(self, namespace: str, key: str, ttl: float) -> int:
        """Atomically add one to a counter that expires ``ttl`` s after its first increment."""
        now = self._clock()
        with self._errors():
            return int(
                await self._run(
                    _INCR,
                    [self._value_key(namespace, key)],
                    [_num(now), _header(b"c", now + ttl), str(_ms(ttl + self.grace))],
                )
            )

    # --- internals --------------------------------------------------------

    async def _execute(self, *args: str | bytes, resend: bool = True) -> Any:
        """One command through the auto-pipeline; its reply, or its error raised.

        After a connection error a command that may have run is resent only
        when ``resend`` (a replay is harmless or fails safe: see the module
        docstring), at most ``retries`` times with jittered backoff; never
        after a timeout.
        """
        failures = 0
        while True:
            if self._pipeline is None:
                raise StoreError("the Redis store is not open")
            try:
                return await self._pipeline.call(*args)
            except _Lost as lost:
                failures += 1
                # Before sending, redis-py has already retried connecting and the health check.
                resendable = lost.may_have_run and isinstance(lost.error, RedisConnectionError)
                if not (resend and resendable) or failures > self.retries:
                    raise lost.error from None
            await asyncio.sleep(self._backoff.compute(failures))

    async def _run(
        self,
        script: _Script,
        keys: Sequence[str],
        args: Sequence[str | bytes],
        *,
        resend: bool = True,
    ) -> Any:
        """``EVALSHA`` of ``script``; on ``NOSCRIPT`` load it and send that command again."""
        command = ("EVALSHA", script.sha, str(len(keys)), *keys, *args)
        try:
            return await self._execute(*command, resend=resend)
        except NoScriptError:
            await self._execute("SCRIPT", "LOAD", script.source)
            return await self._execute(*command, resend=resend)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis failed: {type(exc).__name__}: {exc}") from exc

    def _request_keys(self, auth_req_id: str) -> list[str]:
        return [self._request_prefix + auth_req_id, self._due, self._pending]

    def _write_args(self, request: AuthRequest) -> list[str | bytes]:
        now = self._clock()
        ttl = _ms(request.expires_at + self.retention - now + self.grace)
        lease_left = 0.0 if request.lease_until is None else request.lease_until - now
        return [
            request.auth_req_id,
            self._encoder.encode(request),
            str(request.version),
            _num(request.expires_at),
            request.status.value,
            _num(request.next_poll_at),
            _num(request.lease_until),
            request.lease_owner or "",
            _num(_due_score(request)),
            str(ttl),
            self._lease_prefix,
            str(_ms(lease_left + self.grace)),
            poller(request.tenant_id, request.client_id),
            str(request.interval),
        ]

    def _value_key(self, namespace: str, key: str) -> str:
        # The length makes (namespace, key) unambiguous even when either holds ':'.
        return f"{self.prefix}v:{len(namespace)}:{namespace}:{key}"

    def _payload(self, raw: bytes | None) -> bytes | None:
        if raw is None or raw[:1] != b"v":
            return None
        head, _, payload = raw.partition(b"\n")
        if float(head[1:]) <= self._clock():
            return None
        return payload


def _header(tag: bytes, deadline: float) -> bytes:
    return tag + _num(deadline).encode() + b"\n"


def _with_lease_fields(
    request: AuthRequest, version: bytes, owner: bytes | None, lease_until: bytes | None
) -> AuthRequest:
    """``request`` with the hash's authoritative version and lease (see the module docstring)."""
    fields = (
        int(version),
        None if owner is None else owner.decode(),
        None if lease_until is None else float(lease_until),
    )
    if fields == (request.version, request.lease_owner, request.lease_until):
        return request
    return msgspec.structs.replace(
        request, version=fields[0], lease_owner=fields[1], lease_until=fields[2]
    )


def _redacted(url: str) -> str:
    """The url without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
