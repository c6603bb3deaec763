"""Spans of the gateway's work: a no-op ``Tracing`` unless the ``otel`` extra is enabled.

The app holds one ``Tracing`` (``NO_TRACING``, or ``ciba_gateway.otel.OtelTracing``
when ``tracing.enabled``); the web middleware, the flow engine, the driver and the
notifier open their spans through it. Nothing here imports OpenTelemetry: with
tracing off, a span is a shared ``nullcontext`` and nothing else runs.

Outbound HTTP spans are opened by ``connector.transport``, which cannot be handed
the app's ``Tracing`` (connectors build their own clients). Each span of an
enabled ``Tracing`` therefore puts it in a context variable for the time it is
open; the transport reads that variable (``active()``), so an upstream call made
within a connector call, a notification or a request becomes its child span, and
a call made outside any span costs one ``ContextVar.get``. A context variable is
task-local, not shared state: each request and each driver task sees its own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Literal, Protocol

__all__ = [
    "NO_TRACING",
    "AttributeValue",
    "Span",
    "SpanKind",
    "Tracing",
    "activated",
    "active",
    "current_ids",
    "missing_packages",
]

AttributeValue = str | int | float | bool
SpanKind = Literal["server", "client", "internal"]


class Span(Protocol):
    """The little of a span the gateway uses: attributes and an error class."""

    def set(self, key: str, value: AttributeValue) -> None:
        """Set one attribute (never personal data: docs/operations.md, "Tracing")."""

    def fail(self, error_type: str) -> None:
        """Mark the span failed with ``error.type`` (a class name or status, no message)."""

    def rename(self, name: str) -> None:
        """Name the span once what it did is known (a request's route)."""


class _NoSpan:
    __slots__ = ()

    def set(self, key: str, value: AttributeValue) -> None:
        pass

    def fail(self, error_type: str) -> None:
        pass

    def rename(self, name: str) -> None:
        pass


_NO_SPAN: AbstractContextManager[Span] = nullcontext(_NoSpan())


class Tracing:
    """No tracing: every span is the same no-op (the base the OpenTelemetry one extends)."""

    enabled = False

    def span(
        self,
        name: str,
        *,
        kind: SpanKind = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
        parent_headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        """A span named ``name``, current while the block runs.

        ``parent_headers`` (an incoming request's) may continue the caller's trace
        when the configuration accepts its ``traceparent``.
        """
        return _NO_SPAN

    def outgoing(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` plus ``traceparent`` when propagation to upstreams is on."""
        return headers

    def ids(self) -> tuple[str, str] | None:
        """``(trace_id, span_id)`` in hex of the current sampled span, if any."""
        return None

    def shutdown(self) -> None:
        """Export what is buffered and stop (the app's lifespan ends)."""


NO_TRACING = Tracing()

_active: ContextVar[Tracing | None] = ContextVar("ciba_gateway_tracing", default=None)


def active() -> Tracing | None:
    """The enabled ``Tracing`` whose span is open in this context, else None."""
    return _active.get()


@contextmanager
def activated(tracing: Tracing) -> Iterator[None]:
    """Make ``tracing`` the active one while the block runs (``OtelTracing.span``)."""
    token = _active.set(tracing)
    try:
        yield
    finally:
        _active.reset(token)


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` for a log line written inside an open span."""
    tracing = _active.get()
    return None if tracing is None else tracing.ids()


_PACKAGES = {
    "opentelemetry-api": "opentelemetry.trace",
    "opentelemetry-sdk": "opentelemetry.sdk.trace",
}
_OTLP = {"opentelemetry-exporter-otlp-proto-http": "opentelemetry.exporter.otlp.proto.http"}


def missing_packages(exporter: str) -> list[str]:
    """The distributions ``tracing`` with ``exporter`` needs that are not installed."""
    wanted = {**_PACKAGES, **(_OTLP if exporter == "otlp" else {})}
    return [dist for dist, module in wanted.items() if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
