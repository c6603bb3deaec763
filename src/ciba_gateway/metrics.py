"""Prometheus metrics of one gateway process, on a registry owned by the app.

Label values are bounded: tenant ids, connector instance names, endpoint names
from a fixed set, HTTP status codes, outcome names. Never an auth_req_id, a
client-supplied string or personal data. ``client_id`` is not a label either:
it comes from configuration, but a scrape per client would multiply series.

Metrics are per process; run one worker per container (and scale with
replicas) when every request must be counted by one scrape.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from types import TracebackType

import prometheus_client.metrics as _library
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FLOW_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Seconds from a backchannel request to its outcome: a person answers on a phone."""
_KNOWN_ENDPOINTS = frozenset(
    {"bc-authorize", "token", "userinfo", "jwks", ".well-known/openid-configuration"}
)


def _created_series() -> bool:
    """Whether prometheus_client emits ``_created`` series (its env switch and functions)."""
    return bool(getattr(_library, "_use_created", True))


class _Family:
    """A labelled counter or histogram kept as plain Python numbers, exposed by ``collect``.

    prometheus_client takes a ``threading.Lock`` per increment (two per histogram
    observation) and scans buckets linearly. Here an update is an attribute
    addition, which is safe because every update and every scrape runs on the
    worker's event loop thread: the access-log middleware, the engine, the driver
    and the notifier are coroutines; the SQLite store's threads and the
    ``asyncio.to_thread`` calls in connectors never touch metrics. Anything that
    updates metrics from another thread must hop to the loop first.

    ``collect`` yields the samples prometheus_client's own Counter/Histogram would
    (names, label order, ``le`` strings, ``_created``), so the exposition is unchanged.
    """

    _type = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        # Children by the values as given (the fast path) and by their strings (the series).
        self._memo: dict[tuple[object, ...], object] = {}
        self._children: dict[tuple[str, ...], object] = {}
        registry.register(self)

    def _new_child(self) -> object:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def labels(self, *values: object, **named: object) -> object:
        """The child for these label values (positional or by name), created on first use."""
        if named:
            if values or set(named) != set(self._labelnames):
                raise ValueError("incorrect label names")
            values = tuple(named[n] for n in self._labelnames)
        child = self._memo.get(values)
        if child is None:
            if len(values) != len(self._labelnames):
                raise ValueError("incorrect label count")
            key = tuple(str(v) for v in values)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
            self._memo[values] = child
        return child

    def remove(self, *values: object) -> None:
        """Drop one series."""
        self._memo.clear()
        self._children.pop(tuple(str(v) for v in values), None)

    def clear(self) -> None:
        """Drop every series."""
        self._memo.clear()
        self._children.clear()

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._documentation, self._type)]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self._name, self._documentation, self._type)
        created = _created_series()
        for values, child in list(self._children.items()):
            labels = dict(zip(self._labelnames, values, strict=True))
            for suffix, extra, value in self._child_samples(child, created):
                metric.samples.append(
                    Sample(self._name + suffix, {**labels, **extra}, value, None, None)
                )
        return [metric]

    def _child_samples(
        self, child: object, created: bool
    ) -> Iterable[tuple[str, dict[str, str], float]]:  # pragma: no cover
        raise NotImplementedError


class _CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class _Counter(_Family):
    """A counter; ``name`` without ``_total``, as prometheus_client names the family."""

    _type = "counter"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def labels(self, *values: object, **named: object) -> _CounterChild:
        return super().labels(*values, **named)  # type: ignore[return-value]

    def _new_child(self) -> _CounterChild:
        return _CounterChild()

    def _child_samples(
        self, child: object, created: bool
    ) -> Iterable[tuple[str, dict[str, str], float]]:
        assert isinstance(child, _CounterChild)
        yield "_total", {}, child.value
        if created:
            yield "_created", {}, child.created


class _HistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.sum += amount
        if amount == amount:  # NaN lands in no bucket, as in prometheus_client
            self.counts[bisect_left(self.bounds, amount)] += 1


class _Histogram(_Family):
    _type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._bounds = tuple(bounds)
        self._le = tuple(floatToGoString(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: object, **named: object) -> _HistogramChild:
        return super().labels(*values, **named)  # type: ignore[return-value]

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self._bounds)

    def _child_samples(
        self, child: object, created: bool
    ) -> Iterable[tuple[str, dict[str, str], float]]:
        assert isinstance(child, _HistogramChild)
        acc = 0.0
        for le, count in zip(self._le, child.counts, strict=True):
            acc += count
            yield "_bucket", {"le": le}, acc
        yield "_count", {}, acc
        if self._bounds[0] >= 0:
            yield "_sum", {}, child.sum
        if created:
            yield "_created", {}, child.created


class _UpstreamCall:
    """``Metrics.upstream``: a class, not a generator, since it wraps every connector call."""

    __slots__ = ("_errors", "_latency", "_name", "_operation", "_started")

    def __init__(
        self, latency: _HistogramChild, errors: _Counter, connector_type: str, operation: str
    ) -> None:
        self._latency = latency
        self._errors = errors
        self._name = connector_type
        self._operation = operation
        self._started = 0.0

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None and issubclass(kind, Exception):
            self._errors.labels(self._name, self._operation, kind.__name__).inc()
        self._latency.observe(time.perf_counter() - self._started)


class Metrics:
    """The gateway's metrics; create one per app (no module-level registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Label children by (tenant, endpoint, status): ``labels()`` takes a lock and
        # builds a tuple per call; the label space is bounded (module docstring).
        self._request_children: dict[
            tuple[str, str, int], tuple[_CounterChild, _HistogramChild]
        ] = {}
        self._upstream_children: dict[tuple[str, str], _HistogramChild] = {}
        self.http_requests = _Counter(
            "ciba_http_requests_total",
            "HTTP requests",
            ["tenant", "endpoint", "status"],
            registry=r,
        )
        self.http_latency = _Histogram(
            "ciba_http_request_duration_seconds",
            "HTTP request latency",
            ["tenant", "endpoint", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.flows_started = _Counter(
            "ciba_flows_started_total",
            "Backchannel requests accepted",
            ["tenant", "connector"],
            registry=r,
        )
        self.flows_finished = _Counter(
            "ciba_flows_finished_total",
            "Requests that reached an outcome",
            ["tenant", "connector", "outcome"],
            registry=r,
        )
        self.flow_duration = _Histogram(
            "ciba_flow_duration_seconds",
            "Seconds from the backchannel request to its outcome (approval latency)",
            ["tenant", "connector", "outcome"],
            buckets=_FLOW_BUCKETS,
            registry=r,
        )
        self.store_errors = _Counter(
            "ciba_store_errors_total",
            "Store calls that failed (StoreError), by who saw it: a request or the driver",
            ["source"],
            registry=r,
        )
        self.pending = Gauge(
            "ciba_pending_flows", "Requests pending in the store (at scrape time)", registry=r
        )
        self.upstream_latency = _Histogram(
            "ciba_upstream_call_duration_seconds",
            "Connector calls to upstreams",
            ["connector", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = _Counter(
            "ciba_upstream_errors_total",
            "Connector calls that raised",
            ["connector", "operation", "error"],
            registry=r,
        )
        self.notifications = _Counter(
            "ciba_notifications_total",
            "Ping/push delivery attempts (and notifications dropped without one)",
            ["tenant", "mode", "outcome"],
            registry=r,
        )

    def observe_request(
        self, tenant: str | None, endpoint: str, status: int, seconds: float
    ) -> None:
        """Count one HTTP request; unknown endpoints are folded into ``other``."""
        name = endpoint if endpoint in _KNOWN_ENDPOINTS or endpoint.startswith("/") else "connector"
        if endpoint.startswith("/") and endpoint not in {"/healthz", "/readyz", "/metrics"}:
            name = "other"
        elif endpoint == "(unrouted)":  # web.access_log.UNROUTED: no route served it
            name = "unrouted"
        key = (tenant or "-", name, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(key[0], name, str(status)),
                self.http_latency.labels(key[0], name, str(status)),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def upstream(self, connector_type: str, operation: str) -> _UpstreamCall:
        """``async with``: time a connector call and count the exception class it raised, if any."""
        key = (connector_type, operation)
        latency = self._upstream_children.get(key)
        if latency is None:
            latency = self._upstream_children[key] = self.upstream_latency.labels(*key)
        return _UpstreamCall(latency, self.upstream_errors, connector_type, operation)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
