"""Prometheus metrics of one gateway process, on a registry owned by the app.

Label values are bounded: tenant ids, connector instance names, endpoint names
from a fixed set, HTTP status codes, outcome names. Never an auth_req_id, a
client-supplied string or personal data. ``client_id`` is not a label either:
it comes from configuration, but a scrape per client would multiply series.

Metrics are per process; run one worker per container (and scale with
replicas) when every request must be counted by one scrape.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FLOW_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Seconds from a backchannel request to its outcome: a person answers on a phone."""
_KNOWN_ENDPOINTS = frozenset(
    {"bc-authorize", "token", "userinfo", "jwks", ".well-known/openid-configuration"}
)


class _LabelMemo:
    """``labels(*values)`` of a metric, memoised per metric.

    prometheus_client's ``labels`` converts every value, takes a lock and checks
    its arguments on each call; the label space is bounded (module docstring), so
    each child is looked up that way once. Keyword labels take the library's path.
    """

    _memo: dict[tuple[object, ...], Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._memo = {}

    def labels(self, *values: object, **named: object) -> Any:
        if named:
            return super().labels(*values, **named)  # type: ignore[misc]
        child = self._memo.get(values)
        if child is None:
            child = self._memo[values] = super().labels(*values)  # type: ignore[misc]
        return child

    def remove(self, *values: Any) -> None:
        self._memo.clear()
        super().remove(*values)  # type: ignore[misc]

    def clear(self) -> None:
        self._memo.clear()
        super().clear()  # type: ignore[misc]


class _Counter(_LabelMemo, Counter):
    pass


class _Histogram(_LabelMemo, Histogram):
    pass


class _UpstreamCall:
    """``Metrics.upstream``: a class, not a generator, since it wraps every connector call."""

    __slots__ = ("_errors", "_latency", "_name", "_operation", "_started")

    def __init__(self, metrics: Metrics, connector_type: str, operation: str) -> None:
        self._latency = metrics.upstream_latency.labels(connector_type, operation)
        self._errors = metrics.upstream_errors
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
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
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
        return _UpstreamCall(self, connector_type, operation)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
