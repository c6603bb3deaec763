"""``Tracing`` on the OpenTelemetry SDK (the ``otel`` extra); imported only when enabled.

Each app gets a ``TracerProvider`` of its own, never the process-wide one, so two
apps in one process (tests, the demo's simulators) do not share spans or
settings. Sampling is ``ParentBased(TraceIdRatioBased(sample_ratio))``: a trace
the gateway starts is kept with that probability, and its child spans follow.

Exceptions are never recorded as span events: their messages may quote an
upstream's answer or a person's data. A failed span gets ``error.type`` (the
class name) and the ERROR status with no description.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind as OtelKind
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ciba_gateway.config.model import TracingConfig
from ciba_gateway.tracing import AttributeValue, Span, SpanKind, Tracing, activated

__all__ = ["OtelTracing"]

_KINDS = {"server": OtelKind.SERVER, "client": OtelKind.CLIENT, "internal": OtelKind.INTERNAL}
_ERROR = Status(StatusCode.ERROR)


class _Span:
    """A ``Span`` over an OpenTelemetry span."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def fail(self, error_type: str) -> None:
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(_ERROR)

    def rename(self, name: str) -> None:
        self._span.update_name(name)


def _exporter(settings: TracingConfig) -> SpanExporter | None:
    if settings.exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service_name)
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.endpoint)
    return None


def _version() -> str:
    try:
        return version("ciba-gateway")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "unknown"


class OtelTracing(Tracing):
    """Spans exported as ``settings`` say (or to ``exporter``, synchronously: tests)."""

    enabled = True

    def __init__(self, settings: TracingConfig, *, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": _version()}
        )
        self._provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
        )
        if exporter is not None:
            self._provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            configured = _exporter(settings)
            if configured is not None:
                self._provider.add_span_processor(BatchSpanProcessor(configured))
        self._tracer = self._provider.get_tracer("ciba_gateway", _version())
        self._propagator = TraceContextTextMapPropagator()
        self._accept = settings.accept_traceparent
        self._propagate = settings.propagate

    def span(
        self,
        name: str,
        *,
        kind: SpanKind = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
        parent_headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        parent = None
        if self._accept and parent_headers is not None:
            parent = self._propagator.extract(parent_headers)
        return self._open(name, _KINDS[kind], attributes, parent)

    @contextmanager
    def _open(
        self,
        name: str,
        kind: OtelKind,
        attributes: Mapping[str, AttributeValue] | None,
        parent: object,
    ) -> Iterator[Span]:
        with (
            activated(self),
            self._tracer.start_as_current_span(
                name,
                context=parent,  # type: ignore[arg-type]
                kind=kind,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
        ):
            wrapped = _Span(span)
            try:
                yield wrapped
            except BaseException as exc:
                wrapped.fail(type(exc).__name__)
                raise

    def outgoing(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        if not self._propagate:
            return headers
        carrier = dict(headers)
        self._propagator.inject(carrier)
        return carrier

    def ids(self) -> tuple[str, str] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid or not context.trace_flags.sampled:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    def shutdown(self) -> None:
        self._provider.shutdown()
