"""The tracing seam: no-op spans, the active context, the extra check, ids in JSON lines.

(check-config without the extra installed: tests/unit/test_check_config_cli.py.)
"""

from __future__ import annotations

import json

import pytest
import structlog

from ciba_gateway.observability import configure_logging
from ciba_gateway.tracing import NO_TRACING, active, current_ids, missing_packages


class TestNoTracing:
    def test_span_is_a_shared_no_op(self) -> None:
        """Disabled tracing hands out one span object that accepts and drops everything."""
        with NO_TRACING.span("a", attributes={"k": 1}) as first:
            first.set("k", "v")
            first.fail("Boom")
            first.rename("b")
            assert active() is None
            assert current_ids() is None
        with NO_TRACING.span("c") as second:
            assert second is first

    def test_outgoing_headers_are_left_alone(self) -> None:
        """No traceparent is added when tracing is off."""
        headers = {"Content-Type": "application/json"}
        assert NO_TRACING.outgoing(headers) is headers


class TestMissingPackages:
    def test_all_present_in_the_test_environment(self) -> None:
        """The test extra installs otel, so nothing is missing for any exporter."""
        assert missing_packages("otlp") == []


@pytest.fixture
def structlog_reset() -> object:
    yield None
    structlog.reset_defaults()


@pytest.mark.usefixtures("structlog_reset")
def test_json_lines_carry_ids_only_inside_a_span(capsys: pytest.CaptureFixture[str]) -> None:
    """The configured JSON pipeline adds trace_id/span_id inside an open span, not outside."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ciba_gateway.config.model import TracingConfig
    from ciba_gateway.otel import OtelTracing

    exporter = InMemorySpanExporter()
    tracing = OtelTracing(TracingConfig(enabled=True, exporter="none"), exporter=exporter)
    configure_logging("json", "info")
    log = structlog.get_logger()
    log.info("outside")
    with tracing.span("connector.poll"):
        log.info("inside 199001011239")
    outside, inside = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    (span,) = exporter.get_finished_spans()
    assert "trace_id" not in outside
    assert inside["trace_id"] == format(span.context.trace_id, "032x")
    assert inside["span_id"] == format(span.context.span_id, "016x")
    assert inside["event"] == "inside 19900101****"
