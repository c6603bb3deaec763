"""A recording upstream: an httpx transport that logs every request and injects faults."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import httpx

__all__ = ["FAULTS", "Fault", "RecordingTransport"]

Fault = Literal["timeout", "connect", "reset", "5xx", "malformed"]
FAULTS: tuple[Fault, ...] = ("timeout", "connect", "reset", "5xx", "malformed")
"""Every way an upstream fails that a connector must surface as an ``Upstream*`` error."""


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps the transport to a simulator; ``requests`` lists what the connector sent.

    ``with transport.failing("timeout"): ...`` makes every request in the block fail
    that way instead of reaching the simulator: ``timeout`` (read timeout),
    ``connect`` (refused), ``reset`` (connection reset mid-answer), ``5xx`` (503 with
    a JSON body) or ``malformed`` (200 with a cut-off JSON body).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []
        self.fault: Fault | None = None

    @contextmanager
    def failing(self, fault: Fault) -> Iterator[None]:
        self.fault = fault
        try:
            yield
        finally:
            self.fault = None

    def paths(self) -> list[str]:
        """The URL paths of the recorded requests, in order."""
        return [request.url.path for request in self.requests]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fault is None:
            return await self.inner.handle_async_request(request)
        if self.fault == "timeout":
            raise httpx.ReadTimeout("simulated read timeout", request=request)
        if self.fault == "connect":
            raise httpx.ConnectError("simulated connection refused", request=request)
        if self.fault == "reset":
            raise httpx.ReadError("simulated connection reset", request=request)
        headers = {"content-type": "application/json"}
        if self.fault == "5xx":
            return httpx.Response(503, headers=headers, content=b'{"error":"unavailable"}')
        return httpx.Response(200, headers=headers, content=b'{"status": "compl')

    async def aclose(self) -> None:
        await self.inner.aclose()
