"""The composition root: ``create_app(config)`` builds the Litestar app; nothing imports it.

Signing keys are loaded (or generated) when the app is built, so a bad key
fails fast. The store, connectors and background driver live in the lifespan:
opened on startup, closed on shutdown (leases released).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from litestar import Litestar
from litestar.handlers import asgi

from ciba_gateway.config.model import GatewayConfig
from ciba_gateway.connector import Connector, ConnectorRegistry, build_client, load_registry
from ciba_gateway.flow.adapters import connector_deps
from ciba_gateway.flow.driver import Driver
from ciba_gateway.flow.engine import FlowEngine
from ciba_gateway.flow.notify import DeliveryPolicy, Notifier
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.jose import JwksCache
from ciba_gateway.protocol.push import PushHooks
from ciba_gateway.store.base import Store
from ciba_gateway.store.factory import create_store
from ciba_gateway.tokens import TenantKeys, load_tenant_keys
from ciba_gateway.web.access_log import AccessLogMiddleware
from ciba_gateway.web.callbacks import connector_callback
from ciba_gateway.web.endpoints import ROUTE_HANDLERS
from ciba_gateway.web.responses import EXCEPTION_HANDLERS

__all__ = ["create_app"]

log = structlog.get_logger("ciba_gateway.app")
PURGE_EVERY = 60.0


def _build_connectors(
    config: GatewayConfig, registry: ConnectorRegistry, engine: FlowEngine
) -> dict[str, dict[str, Connector]]:
    built: dict[str, dict[str, Connector]] = {}
    for tenant in config.tenants:
        names = {c.client_id: c.display_name for c in tenant.clients}
        instances: dict[str, Connector] = {}
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
        built[tenant.id] = instances
    return built


async def _close_all(connectors: dict[str, dict[str, Connector]]) -> None:
    for instances in connectors.values():
        for connector in instances.values():
            try:
                await connector.aclose()
            except Exception:
                log.warning("connector_close_failed", connector=type(connector).__name__)


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

    return asgi(path=path, is_mount=True)(mounted)


def create_app(
    config: GatewayConfig,
    *,
    registry: ConnectorRegistry | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    run_driver: bool = True,
    driver_tick: float = 0.2,
) -> Litestar:
    """Build the gateway app for ``config``.

    ``registry`` defaults to the installed plugins; ``store`` to the configured
    one; ``run_driver=False`` leaves polling to the caller (tests drive
    ``app.state.driver.run_once()`` themselves).
    """
    registry = registry or load_registry()
    keys: dict[str, TenantKeys] = {t.id: load_tenant_keys(t) for t in config.tenants}
    the_store = store or create_store(config.store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await the_store.open()
        engine = FlowEngine(the_store, clock=clock)
        connectors = _build_connectors(config, registry, engine)
        http = build_client("")
        gateway = Gateway(
            config=config,
            tenants={
                t.mount.strip("/"): TenantContext(
                    config=t, keys=keys[t.id], connectors=connectors[t.id]
                )
                for t in config.tenants
            },
            engine=engine,
            jwks_cache=JwksCache(http, clock=clock),
            clock=clock,
        )
        hooks = PushHooks(gateway)
        notifications = config.notifications
        notifier = Notifier(
            http,
            endpoint_for=hooks.endpoint_for,
            build_push=hooks.build_push,
            open_push=hooks.open_push,
            policy=DeliveryPolicy(
                timeout=notifications.timeout,
                max_attempts=notifications.max_attempts,
                initial_wait=notifications.initial_wait,
                max_wait=notifications.max_wait,
            ),
        )
        driver = Driver(engine, gateway.connector, tick=driver_tick, notifier=notifier)
        app.state.gateway = gateway
        app.state.driver = driver
        if run_driver:
            driver.start()
        purge = asyncio.create_task(_purge_loop(the_store, clock))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await driver.stop()
            await _close_all(connectors)
            await http.aclose()
            await the_store.close()
            app.state.gateway = None

    handlers: list[Any] = [*ROUTE_HANDLERS, connector_callback]
    for sim in config.simulators:
        factory = registry.simulators[sim.type]
        handlers.append(_mount(sim.mount, factory(sim.settings)))
    return Litestar(
        route_handlers=handlers,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[AccessLogMiddleware],
        openapi_config=None,
        debug=False,
    )
