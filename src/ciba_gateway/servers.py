"""Running the app under an ASGI server: granian (default) or uvicorn.

Both servers import the app by name (``ciba_gateway.asgi:app_from_env``, a
factory reading ``CIBA_GATEWAY_CONFIG``) so ``--workers N`` works. The default
is granian, chosen by measurement (BENCHMARKS.md): on these 2-core machines it
answers the token endpoint markedly faster than uvicorn at one worker.

Reload: under uvicorn with one worker, the app reloads its config itself on
SIGHUP (``app.Runtime.reload``). Under granian, SIGHUP makes granian respawn its
workers; to keep "an invalid config is refused and the old one keeps serving",
workers read a *snapshot* of the config file, and a reload hook in the main
process replaces the snapshot only when the new file validates. Problems are
logged as ``reload_refused`` events with their YAML paths.

Slow headers: granian closes a connection whose request headers are not complete
after 30 s. uvicorn has no such limit (``timeout_keep_alive`` only covers idle
time between requests), so ``serve --server uvicorn`` uses ``HeaderTimeoutProtocol``:
its httptools protocol with the same 30 s deadline from the connection's (or the
request's) first byte to the end of its headers.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import tempfile
from asyncio import TimerHandle, Transport
from pathlib import Path
from typing import Any, ClassVar

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ciba_gateway.connector import load_registry
from ciba_gateway.errors import ConfigError
from ciba_gateway.preflight import check_config, log_refused
from ciba_gateway.tokens.keys import load_tenant_keys

__all__ = [
    "CONFIG_ENV",
    "HEADER_TIMEOUT",
    "UVICORN_OPTIONS",
    "HeaderTimeoutProtocol",
    "PortUnavailableError",
    "bind_listener",
    "granian_server",
    "run_granian",
    "run_uvicorn",
]

CONFIG_ENV = "CIBA_GATEWAY_CONFIG"
APP_FACTORY = "ciba_gateway.asgi:app_from_env"
GRACEFUL_SECONDS = 10

log = structlog.get_logger("ciba_gateway.server")

HEADER_TIMEOUT = 30.0
"""Seconds a client may take to send a request's headers (granian's own limit)."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes connections whose headers dribble in.

    The deadline starts when the connection opens (first request) or when the next
    request's first byte is parsed (keep-alive), and ends at the last header.
    """

    header_timeout: ClassVar[float] = HEADER_TIMEOUT
    _header_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


UVICORN_OPTIONS: dict[str, object] = {
    "http": HeaderTimeoutProtocol,
    "log_config": None,
    "access_log": False,
    "timeout_graceful_shutdown": GRACEFUL_SECONDS,
}
"""uvicorn settings of ``serve`` (bench/ runs its ceiling app with the same ones)."""


class PortUnavailableError(Exception):
    """The address cannot be listened on; the message says why in plain words."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``, as the servers set it).

    Raises:
        PortUnavailableError: the port is in use or the address cannot be bound.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PortUnavailableError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"{host}:{port} is already in use (another gateway or demo?); nothing started"
        else:
            message = f"cannot listen on {host}:{port}: {exc.strerror}; nothing started"
        raise PortUnavailableError(message) from None
    return sock


def run_uvicorn(config_path: Path, host: str, port: int, workers: int) -> int:
    """Serve with uvicorn (httptools/uvloop when installed)."""
    import uvicorn

    os.environ[CONFIG_ENV] = str(config_path)
    _exit_cleanly_on_sigterm()
    options: dict[str, Any] = dict(UVICORN_OPTIONS)
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, **options)
    return 0


def _exit_cleanly_on_sigterm() -> None:
    """Exit 0 after uvicorn's graceful SIGTERM shutdown.

    uvicorn catches SIGTERM, drains in-flight requests, runs the lifespan
    shutdown (driver stopped, leases released), then re-raises the signal with
    the previous handler restored; this handler turns that into a clean exit.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class ConfigSnapshot:
    """A validated copy of the config file that granian's workers read."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.directory = Path(tempfile.mkdtemp(prefix="ciba-gateway-"))
        self.path = self.directory / "gateway.yaml"

    def refresh(self) -> bool:
        """Copy the source over the snapshot if it validates; log every problem if not."""
        try:
            text = self.source.read_text()
            config = check_config(self.source, registry=load_registry())
            for tenant in config.tenants:
                load_tenant_keys(tenant)
        except ConfigError as exc:
            log_refused(log, exc)
            return False
        except OSError as exc:
            log.error("reload_refused", problem=str(exc))
            return False
        staging = self.directory / "gateway.yaml.new"
        staging.write_text(text)
        staging.replace(self.path)
        return True

    def remove(self) -> None:
        for item in self.directory.iterdir():
            item.unlink()
        self.directory.rmdir()


def granian_server(target: str, host: str, port: int, workers: int) -> Any:
    """A ``Granian`` server for the ASGI app factory ``target`` with the settings of ``serve``."""
    from granian import Granian
    from granian.constants import Interfaces

    return Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_access=False,
        workers_kill_timeout=GRACEFUL_SECONDS,
        respawn_interval=1.0,
    )


def run_granian(config_path: Path, host: str, port: int, workers: int) -> int:
    """Serve with granian; SIGHUP validates the file, then respawns workers gracefully."""
    snapshot = ConfigSnapshot(config_path)
    if not snapshot.refresh():
        return 1
    os.environ[CONFIG_ENV] = str(snapshot.path)
    server = granian_server(APP_FACTORY, host, port, workers)

    def on_reload() -> None:
        if snapshot.refresh():
            log.info("config_validated_for_reload")

    server.on_reload(on_reload)
    try:
        server.serve()
    finally:
        snapshot.remove()
    return 0
