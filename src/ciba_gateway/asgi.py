"""ASGI factory for servers that import the app by name (``serve`` with several workers)."""

from __future__ import annotations

import gc
import os

from litestar import Litestar

__all__ = ["app_from_env"]


def app_from_env() -> Litestar:
    """Build the app from the config file named by ``CIBA_GATEWAY_CONFIG``."""
    from ciba_gateway.app import create_app
    from ciba_gateway.config.load import load_config
    from ciba_gateway.connector import load_registry
    from ciba_gateway.observability import configure_logging

    path = os.environ["CIBA_GATEWAY_CONFIG"]
    config = load_config(path, registry=load_registry())
    configure_logging(config.logging.format, config.logging.level)
    app = create_app(config, config_path=path)
    # What exists now (modules, config, the app) lives as long as the process: kept
    # out of the collector, full collections stay short (p99 latency, BENCHMARKS.md).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    return app
