"""Metrics: the plain-number families expose what prometheus_client's own metrics would."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ciba_gateway.metrics import Metrics, _Counter, _Family, _Histogram

AMOUNTS = [0.0, 0.001, 0.0010001, 0.005, 0.3, 2.5, 10.0, 11.0, math.inf, -1.0, 7.7, math.nan]


def _stamps_masked(text: bytes) -> str:
    """The exposition with ``_created`` values (wall-clock times) replaced."""
    return re.sub(r"(_created(?:\{[^}]*\})?) \S+", r"\1 T", text.decode())


def _library_twin(metrics: Metrics) -> tuple[CollectorRegistry, dict[str, Counter | Histogram]]:
    """prometheus_client's own Counter/Histogram for each family of ``metrics``, same order."""
    registry = CollectorRegistry(auto_describe=True)
    twins: dict[str, Counter | Histogram] = {}
    for family in metrics.registry._collector_to_names:
        if isinstance(family, _Counter):
            twins[family._name] = Counter(
                family._name, family._documentation, family._labelnames, registry=registry
            )
        elif isinstance(family, _Histogram):
            twins[family._name] = Histogram(
                family._name,
                family._documentation,
                family._labelnames,
                buckets=family._bounds,
                registry=registry,
            )
        else:  # the pending gauge: prometheus_client's own
            registry.register(family)
    return registry, twins


def _families(metrics: Metrics) -> Iterator[_Family]:
    return (f for f in metrics.registry._collector_to_names if isinstance(f, _Family))


@pytest.fixture(params=[True, False], ids=["created", "no-created"])
def created_series(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.param:
        prometheus_client.enable_created_metrics()
    else:
        prometheus_client.disable_created_metrics()
    yield
    prometheus_client.enable_created_metrics()


@pytest.mark.usefixtures("created_series")
def test_every_family_renders_as_prometheus_client_would_for_the_same_updates() -> None:
    metrics = Metrics()
    registry, twins = _library_twin(metrics)
    assert len(twins) == len(list(_families(metrics))) == 9
    for family in _families(metrics):
        twin = twins[family._name]
        width = len(family._labelnames)
        for i, amount in enumerate(AMOUNTS * 2):
            values = tuple(f"v{(i + j) % 3}" for j in range(width))
            if isinstance(family, _Counter):
                if amount >= 0 and not math.isinf(amount):
                    family.labels(*values).inc(amount)
                    twin.labels(*values).inc(amount)  # type: ignore[union-attr]
            else:
                family.labels(*values).observe(amount)
                twin.labels(*values).observe(amount)  # type: ignore[union-attr]
        family.labels(*(["idle"] * width))  # a series without updates is exposed too
        twin.labels(*(["idle"] * width))
    metrics.pending.set(3)
    ours, theirs = metrics.render(), generate_latest(registry)
    assert _stamps_masked(ours) == _stamps_masked(theirs)
    assert (b"_created" in ours) is prometheus_client.metrics._use_created


def test_observe_request_and_upstream_count_what_they_saw() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 20.0):
        metrics.observe_request("acme", "token", 400, seconds)
    metrics.observe_request(None, "/no/such", 404, 0.01)

    async def calls() -> None:
        async with metrics.upstream("bankid", "start"):
            pass
        with pytest.raises(KeyError):
            async with metrics.upstream("bankid", "start"):
                raise KeyError("x")

    asyncio.run(calls())
    sample = metrics.registry.get_sample_value
    token = {"tenant": "acme", "endpoint": "token", "status": "400"}
    assert sample("ciba_http_requests_total", token) == 4.0
    assert sample("ciba_http_request_duration_seconds_bucket", {**token, "le": "0.001"}) == 1.0
    assert sample("ciba_http_request_duration_seconds_bucket", {**token, "le": "0.005"}) == 3.0
    assert sample("ciba_http_request_duration_seconds_bucket", {**token, "le": "10.0"}) == 3.0
    assert sample("ciba_http_request_duration_seconds_count", token) == 4.0
    assert sample("ciba_http_request_duration_seconds_sum", token) == pytest.approx(20.0065)
    other = {"tenant": "-", "endpoint": "other", "status": "404"}
    assert sample("ciba_http_requests_total", other) == 1.0
    start = {"connector": "bankid", "operation": "start"}
    assert sample("ciba_upstream_call_duration_seconds_count", start) == 2.0
    assert sample("ciba_upstream_errors_total", {**start, "error": "KeyError"}) == 1.0


def test_labels_given_as_numbers_or_by_name_are_one_series() -> None:
    metrics = Metrics()
    metrics.store_errors.labels("request").inc()
    metrics.store_errors.labels(source="request").inc()
    metrics.http_requests.labels("acme", "token", 200).inc()
    metrics.http_requests.labels("acme", "token", "200").inc()
    assert metrics.registry.get_sample_value("ciba_store_errors_total", {"source": "request"}) == 2
    labels = {"tenant": "acme", "endpoint": "token", "status": "200"}
    assert metrics.registry.get_sample_value("ciba_http_requests_total", labels) == 2


def test_wrong_labels_and_negative_increments_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="label count"):
        metrics.store_errors.labels("a", "b")
    with pytest.raises(ValueError, match="label names"):
        metrics.store_errors.labels(origin="request")
    with pytest.raises(ValueError, match="non-negative"):
        metrics.store_errors.labels("request").inc(-1)
    assert b'source="a"' not in metrics.render()


def test_remove_and_clear_drop_series() -> None:
    metrics = Metrics()
    metrics.store_errors.labels("request").inc()
    metrics.store_errors.labels("driver").inc()
    metrics.store_errors.remove("request")
    assert b'source="request"' not in metrics.render()
    metrics.store_errors.labels("request").inc()
    assert metrics.registry.get_sample_value("ciba_store_errors_total", {"source": "request"}) == 1
    metrics.store_errors.clear()
    assert b"ciba_store_errors_total{" not in metrics.render()


def test_two_apps_registries_are_independent() -> None:
    one, two = Metrics(), Metrics()
    one.flows_started.labels("acme", "bankid").inc()
    assert b"ciba_flows_started_total{" in one.render()
    assert b"ciba_flows_started_total{" not in two.render()
