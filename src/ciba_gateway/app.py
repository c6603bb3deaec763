"""The composition root: ``create_app(config)`` builds the Litestar app; nothing imports it.

Signing keys are loaded (or generated) when the app is built, so a bad key
fails fast. The store, connectors, notifier and background driver live in the
lifespan: opened on startup, closed on shutdown (driver stopped, leases
released). The current tenant set is an immutable ``Gateway`` on
``app.state.gateway``; a reload (SIGHUP, see ``Runtime.reload``) builds a new
one and swaps it, so requests in flight finish on the one they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.handlers import asgi

from ciba_gateway.audit import AuditTrail
from ciba_gateway.config.model import GatewayConfig, TracingConfig
from ciba_gateway.connector import (
    Connector,
    ConnectorRegistry,
    HttpSettings,
    build_client,
    build_transport,
    load_registry,
)
from ciba_gateway.errors import ConfigError, ConfigProblem
from ciba_gateway.flow.adapters import connector_deps
from ciba_gateway.flow.driver import Driver
from ciba_gateway.flow.engine import FlowEngine
from ciba_gateway.flow.notify import DeliveryPolicy, Notifier
from ciba_gateway.metrics import Metrics
from ciba_gateway.preflight import check_config, log_refused
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.jose import JwksCache
from ciba_gateway.protocol.push import PushHooks
from ciba_gateway.protocol.quota import StartLimiter
from ciba_gateway.store.base import Store
from ciba_gateway.store.factory import create_store
from ciba_gateway.tokens.keys import TenantKeys, load_tenant_keys
from ciba_gateway.tracing import NO_TRACING, Tracing
from ciba_gateway.web.access_log import AccessLogMiddleware
from ciba_gateway.web.callbacks import connector_callback
from ciba_gateway.web.endpoints import ROUTE_HANDLERS, tenant_routes
from ciba_gateway.web.openapi import OPENAPI_CONFIG
from ciba_gateway.web.responses import EXCEPTION_HANDLERS
from ciba_gateway.web.tracing import TracingMiddleware

__all__ = ["MAX_REQUEST_BODY", "Runtime", "build_tracing", "create_app"]

log = structlog.get_logger("ciba_gateway.app")
PURGE_EVERY = 60.0
MAX_REQUEST_BODY = 1024 * 1024
"""Global cap on a request body read through Litestar (routes set smaller ones)."""
RETIRE_CONNECTORS_AFTER = 30.0
"""Seconds a reload waits before closing the connectors it replaced (in-flight calls)."""


def _build_connectors(
    config: GatewayConfig, registry: ConnectorRegistry, engine: FlowEngine
) -> dict[str, dict[str, Connector]]:
    built: dict[str, dict[str, Connector]] = {}
    try:
        for tenant in config.tenants:
            names = {c.client_id: c.display_name for c in tenant.clients}
            instances: dict[str, Connector] = {}
            built[tenant.id] = instances
            for name, instance in tenant.connectors.items():
                cls = registry.connector(instance.type)
                deps = connector_deps(
                    engine,
                    tenant_id=tenant.id,
                    instance_name=name,
                    base_url=f"{tenant.issuer.rstrip('/')}/{name}",
                    client_names=names,
                )
                instances[name] = cls(instance.settings, deps)
    except BaseException:
        _schedule_close(built, delay=0)
        raise
    return built


async def _close_all(connectors: dict[str, dict[str, Connector]]) -> None:
    for instances in connectors.values():
        for connector in instances.values():
            try:
                await connector.aclose()
            except Exception:
                log.warning("connector_close_failed", connector=type(connector).__name__)


def _schedule_close(connectors: dict[str, dict[str, Connector]], delay: float) -> None:
    async def later() -> None:
        await asyncio.sleep(delay)
        await _close_all(connectors)

    with contextlib.suppress(RuntimeError):  # no running loop: nothing was opened
        asyncio.get_running_loop().create_task(later())


class Runtime:
    """The long-lived parts of one app: store, engine, driver, notifier, metrics.

    Held on ``app.state.runtime``; owns the swap of ``app.state.gateway``.
    """

    def __init__(
        self,
        state: State,
        config: GatewayConfig,
        *,
        registry: ConnectorRegistry,
        store: Store,
        keys: dict[str, TenantKeys],
        clock: Callable[[], float],
        metrics: Metrics,
        config_path: Path | None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.state = state
        self.tracing = tracing
        self.config = config
        self.registry = registry
        self.store = store
        self.keys = keys
        self.clock = clock
        self.metrics = metrics
        self.config_path = config_path
        self.audit = AuditTrail(config.audit)
        self.engine = FlowEngine(
            store,
            clock=clock,
            metrics=metrics,
            on_decision=self.audit.record,
            notify_expiry=config.notifications.on_expiry,
            tracing=tracing,
            connector_kinds={cls: name for name, cls in registry.connectors.items()},
        )
        self.connectors: dict[str, dict[str, Connector]] = {}
        self.http: httpx.AsyncClient | None = None
        self.jwks_cache: JwksCache | None = None
        self.start_limiter = StartLimiter.for_store(config.store)

    @property
    def gateway(self) -> Gateway:
        return self.state.gateway

    def _gateway(
        self,
        config: GatewayConfig,
        keys: dict[str, TenantKeys],
        connectors: dict[str, dict[str, Connector]],
    ) -> Gateway:
        assert self.jwks_cache is not None
        return Gateway(
            config=config,
            tenants={
                t.mount.strip("/"): TenantContext(
                    config=t, keys=keys[t.id], connectors=connectors[t.id]
                )
                for t in config.tenants
            },
            engine=self.engine,
            jwks_cache=self.jwks_cache,
            clock=self.clock,
            start_limiter=self.start_limiter,
        )

    def connector(self, tenant_id: str, name: str) -> Connector | None:
        """The current connector instance (the driver looks it up on every poll)."""
        return self.gateway.connector(tenant_id, name)

    async def start(self, *, run_driver: bool, driver_tick: float, lease_seconds: float) -> None:
        await self.store.open()
        self.http = build_client("", mounts=notification_mounts(self.config))
        self.jwks_cache = JwksCache(self.http, clock=self.clock)
        self.connectors = _build_connectors(self.config, self.registry, self.engine)
        self.state.gateway = self._gateway(self.config, self.keys, self.connectors)
        hooks = PushHooks(lambda: self.state.gateway)
        policy = self.config.notifications
        notifier = Notifier(
            self.http,
            endpoint_for=hooks.endpoint_for,
            build_push=hooks.build_push,
            open_push=hooks.open_push,
            policy=DeliveryPolicy(
                timeout=policy.timeout,
                max_attempts=policy.max_attempts,
                initial_wait=policy.initial_wait,
                max_wait=policy.max_wait,
            ),
            metrics=self.metrics,
            tracing=self.tracing,
        )
        self.driver = Driver(
            self.engine,
            self.connector,
            tick=driver_tick,
            lease_seconds=lease_seconds,
            notifier=notifier,
        )
        self.state.driver = self.driver
        if run_driver:
            self.driver.start()

    async def stop(self) -> None:
        await self.driver.stop()
        await _close_all(self.connectors)
        if self.http is not None:
            await self.http.aclose()
        await self.start_limiter.aclose()
        await self.store.close()
        self.audit.close()
        self.tracing.shutdown()

    async def reload(self) -> bool:
        """Re-read the config file and swap tenants, clients, routes, keys and connectors.

        An invalid config is refused: every problem is logged and the running
        config keeps serving. Store, server and simulator settings need a restart.
        """
        if self.config_path is None:
            log.warning("reload_refused", reason="the app was not started from a config file")
            return False
        try:
            config = check_config(self.config_path, registry=self.registry)
            if config.store != self.config.store:
                log.error("reload_refused", reason="store settings change needs a restart")
                return False
            keys = {t.id: load_tenant_keys(t) for t in config.tenants}
            connectors = _build_connectors(config, self.registry, self.engine)
        except ConfigError as exc:
            log_refused(log, exc)
            return False
        except Exception as exc:
            log.error("reload_refused", error=type(exc).__name__, detail=str(exc))
            return False
        old = self.connectors
        self.config, self.keys, self.connectors = config, keys, connectors
        self.state.gateway = self._gateway(config, keys, connectors)
        _schedule_close(old, delay=RETIRE_CONNECTORS_AFTER)
        log.info("config_reloaded", tenants=len(config.tenants))
        return True


def notification_mounts(config: GatewayConfig) -> dict[str, httpx.AsyncBaseTransport]:
    """A transport trusting ``notification_ca_file`` per notification endpoint origin.

    The client's own file wins over its tenant's. Built at startup: a reload that
    changes these files needs a restart (as store settings do).

    Raises:
        ConfigError: two clients name the same origin with different CA files.
    """
    files: dict[str, tuple[str, str]] = {}
    problems: list[ConfigProblem] = []
    for tenant in config.tenants:
        for client in tenant.clients:
            ca_file = client.notification_ca_file or tenant.notification_ca_file
            if ca_file is None or client.notification_endpoint is None:
                continue
            parts = urlsplit(client.notification_endpoint)
            if parts.scheme != "https":
                continue
            origin = f"https://{parts.hostname}:{parts.port or 443}"
            where = f"tenants.{tenant.id}.clients.{client.client_id}.notification_ca_file"
            known = files.setdefault(origin, (ca_file, where))
            if known[0] != ca_file:
                problems.append(ConfigProblem(where, f"{origin} is trusted by {known[1]} already"))
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    for origin, (ca_file, where) in files.items():
        try:
            mounts[origin] = build_transport(HttpSettings(ca_file=ca_file))
        except (OSError, ssl.SSLError) as exc:
            problems.append(ConfigProblem(where, f"cannot load {ca_file}: {exc}"))
    if problems:
        raise ConfigError(problems)
    return mounts


async def _purge_loop(store: Store, clock: Callable[[], float]) -> None:
    while True:
        await asyncio.sleep(PURGE_EVERY)
        try:
            await store.purge_expired(clock())
        except Exception:
            log.warning("purge_failed")


def _mount(path: str, inner: Any) -> Any:
    """An ASGI app (an upstream simulator) mounted under ``path``."""

    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await inner(scope, receive, send)

    return asgi(path=path, is_mount=True, copy_scope=True)(mounted)


def build_tracing(settings: TracingConfig) -> Tracing:
    """The app's ``Tracing``: OpenTelemetry only when enabled (only then is it imported)."""
    if not settings.enabled:
        return NO_TRACING
    from ciba_gateway.otel import OtelTracing

    return OtelTracing(settings)


def create_app(
    config: GatewayConfig,
    *,
    registry: ConnectorRegistry | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    run_driver: bool = True,
    config_path: str | Path | None = None,
    tracing: Tracing | None = None,
) -> Litestar:
    """Build the gateway app for ``config``.

    ``registry`` defaults to the installed plugins; ``store`` to the configured
    one; ``run_driver=False`` leaves polling to the caller (tests drive
    ``app.state.driver.run_once()`` themselves). With ``config_path`` the app
    reloads that file on SIGHUP. ``tracing`` replaces the one ``config.tracing``
    describes (tests export spans to memory).
    """
    registry = registry or load_registry()
    keys: dict[str, TenantKeys] = {t.id: load_tenant_keys(t) for t in config.tenants}
    the_store = store or create_store(config.store, clock=clock)
    metrics = Metrics()
    the_tracing = tracing or build_tracing(config.tracing)
    path = Path(config_path) if config_path is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = Runtime(
            app.state,
            config,
            registry=registry,
            store=the_store,
            keys=keys,
            clock=clock,
            metrics=metrics,
            config_path=path,
            tracing=the_tracing,
        )
        app.state.runtime = runtime
        await runtime.start(
            run_driver=run_driver,
            driver_tick=config.driver.tick,
            lease_seconds=config.driver.lease_seconds,
        )
        loop = asyncio.get_running_loop()
        on_hup = False
        if path is not None:
            try:
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(runtime.reload()))
                on_hup = True
            except (ValueError, RuntimeError):  # not the main thread (embedded, tests)
                log.info("sighup_reload_unavailable")
        purge = asyncio.create_task(_purge_loop(the_store, clock))
        try:
            yield
        finally:
            if on_hup:
                loop.remove_signal_handler(signal.SIGHUP)
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await runtime.stop()
            app.state.gateway = None

    handlers: list[Any] = [
        *ROUTE_HANDLERS,
        *tenant_routes(t.mount.strip("/") for t in config.tenants),
        connector_callback,
    ]
    for sim in config.simulators:
        factory = registry.simulators[sim.type]
        handlers.append(_mount(sim.mount, factory(sim.settings)))
    app = Litestar(
        route_handlers=handlers,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=OPENAPI_CONFIG,
        logging_config=None,  # configure_logging set up the stdlib root: one format
        request_max_body_size=MAX_REQUEST_BODY,
        debug=False,
    )
    # Around the whole app, not in the route stack: unrouted requests are logged too.
    app.asgi_handler = AccessLogMiddleware(
        app.asgi_handler,
        metrics=metrics,
        quiet_prefixes=()
        if config.logging.simulator_requests
        else tuple(f"{s.mount.rstrip('/')}/" for s in config.simulators),
    )
    if the_tracing.enabled:
        # Outside the access log: its request line is written inside the span.
        app.asgi_handler = TracingMiddleware(app.asgi_handler, the_tracing)
    app.state.metrics = metrics
    return app
