"""Upstreams for tests: an in-process simulator behind httpx, and a recording, faulting wrapper."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import httpx

__all__ = ["FAULTS", "Fault", "RecordingTransport", "SimulatorTransport"]

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


class SimulatorTransport(httpx.AsyncBaseTransport):
    """Serve an ASGI app (a simulator) in-process the way a real server fails.

    ``httpx.ASGITransport`` raises whatever the app raises. A server answers 500 when
    the app fails before it starts answering, and cuts the connection when the answer
    was started but not finished; this transport does the same, so a dropped answer
    surfaces as ``httpx.RemoteProtocolError`` like it does over the network.
    """

    def __init__(self, app: Callable[[Any, Any, Any], Awaitable[None]]) -> None:
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Run the app for one request."""
        progress = {"started": False, "finished": False}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async def watch(message: Any) -> None:
                if message["type"] == "http.response.start":
                    progress["started"] = True
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    progress["finished"] = True
                await send(message)

            await self._app(scope, receive, watch)
            if progress["started"] and not progress["finished"]:
                raise ConnectionAbortedError("the app left its answer unfinished")

        try:
            return await httpx.ASGITransport(app=app).handle_async_request(request)
        except Exception as exc:
            if progress["started"]:
                raise httpx.RemoteProtocolError(
                    "server closed the connection without a complete answer", request=request
                ) from exc
            return httpx.Response(
                500,
                headers={"content-type": "text/plain"},
                content=b"Internal Server Error",
                request=request,
            )
