"""Discovery of connector and simulator plugins through entry points.

Connectors register under the group ``ciba_gateway.connectors`` (name = the
``type`` used in YAML, value = the connector class). Simulators of upstream
services register under ``ciba_gateway.simulators`` (value = a factory
``create_simulator(settings: dict) -> ASGI app``). The registry is built by a
function, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import msgspec

__all__ = [
    "CONNECTOR_GROUP",
    "SIMULATOR_GROUP",
    "ConnectorRegistry",
    "PluginError",
    "load_registry",
]

CONNECTOR_GROUP = "ciba_gateway.connectors"
SIMULATOR_GROUP = "ciba_gateway.simulators"


class PluginError(Exception):
    """A plugin could not be loaded or does not satisfy the connector API."""


def _check_connector_class(name: str, cls: Any) -> None:
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, msgspec.Struct)):
        raise PluginError(f"connector {name!r}: Config must be a msgspec.Struct class")
    for attr in ("start", "poll", "cancel", "routes", "aclose"):
        if not callable(getattr(cls, attr, None)):
            raise PluginError(f"connector {name!r}: missing method {attr}()")
    for attr in ("login_hint_kinds", "authorization_details_types"):
        if not isinstance(getattr(cls, attr, None), frozenset):
            raise PluginError(f"connector {name!r}: {attr} must be a frozenset")


class ConnectorRegistry(msgspec.Struct, frozen=True):
    """Connector classes and simulator factories by name."""

    connectors: Mapping[str, type]
    simulators: Mapping[str, Callable[..., Any]]

    def connector(self, name: str) -> type:
        """The connector class registered as ``name``; KeyError when absent."""
        return self.connectors[name]

    def with_connector(self, name: str, cls: type) -> ConnectorRegistry:
        """A copy with ``cls`` registered as ``name`` (tests, embedding)."""
        _check_connector_class(name, cls)
        return ConnectorRegistry({**self.connectors, name: cls}, self.simulators)


def load_registry(*, strict: bool = False) -> ConnectorRegistry:
    """Load every installed connector and simulator plugin.

    A plugin that fails to load is skipped (with ``strict=False``) so one broken
    distribution does not take the gateway down; configuration that names it then
    fails validation with the list of installed types.
    """
    connectors: dict[str, type] = {}
    for ep in entry_points(group=CONNECTOR_GROUP):
        try:
            cls = ep.load()
            _check_connector_class(ep.name, cls)
        except Exception:
            if strict:
                raise
            continue
        connectors.setdefault(ep.name, cls)
    simulators: dict[str, Callable[..., Any]] = {}
    for ep in entry_points(group=SIMULATOR_GROUP):
        try:
            simulators.setdefault(ep.name, ep.load())
        except Exception:
            if strict:
                raise
    return ConnectorRegistry(connectors, simulators)
