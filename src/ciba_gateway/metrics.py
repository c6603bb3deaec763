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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


class Metrics:
    """The gateway's metrics; create one per app (no module-level registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Label children by (tenant, endpoint, status): ``labels()`` takes a lock and
        # builds a tuple per call; the label space is bounded (module docstring).
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.http_requests = Counter(
            "ciba_http_requests_total",
            "HTTP requests",
            ["tenant", "endpoint", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "ciba_http_request_duration_seconds",
            "HTTP request latency",
            ["tenant", "endpoint", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.flows_started = Counter(
            "ciba_flows_started_total",
            "Backchannel requests accepted",
            ["tenant", "connector"],
            registry=r,
        )
        self.flows_finished = Counter(
            "ciba_flows_finished_total",
            "Requests that reached an outcome",
            ["tenant", "connector", "outcome"],
            registry=r,
        )
        self.flow_duration = Histogram(
            "ciba_flow_duration_seconds",
            "Seconds from the backchannel request to its outcome (approval latency)",
            ["tenant", "connector", "outcome"],
            buckets=_FLOW_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "ciba_store_errors_total",
            "Store calls that failed (StoreError), by who saw it: a request or the driver",
            ["source"],
            registry=r,
        )
        self.pending = Gauge(
            "ciba_pending_flows", "Requests pending in the store (at scrape time)", registry=r
        )
        self.upstream_latency = Histogram(
            "ciba_upstream_call_duration_seconds",
            "Connector calls to upstreams",
            ["connector", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "ciba_upstream_errors_total",
            "Connector calls that raised",
            ["connector", "operation", "error"],
            registry=r,
        )
        self.notifications = Counter(
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

    @asynccontextmanager
    async def upstream(self, connector_type: str, operation: str) -> AsyncIterator[None]:
        """Time a connector call and count the exception class it raised, if any."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.upstream_errors.labels(connector_type, operation, type(exc).__name__).inc()
            raise
        finally:
            self.upstream_latency.labels(connector_type, operation).observe(
                time.perf_counter() - started
            )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
