"""``ciba-gateway check-config PATH``: validate a configuration file and report every problem."""

from __future__ import annotations

import sys
from typing import TextIO

from ciba_gateway.config.load import format_problems
from ciba_gateway.connector.registry import load_registry
from ciba_gateway.errors import ConfigError
from ciba_gateway.preflight import check_config

__all__ = ["check_config_command"]


def check_config_command(path: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate the configuration at ``path`` against the installed connectors.

    It checks what ``serve`` checks before it starts (``ciba_gateway.preflight``): the
    model, its cross-references and the key and TLS files the configuration names.
    Prints ``OK: <path> (<n> tenants)`` to ``out`` and returns 0, or prints every
    problem as ``FILE:LINE:COLUMN: yaml.path: message`` (one per line, in file order)
    to ``err`` and returns 1.
    The streams default to ``sys.stdout`` / ``sys.stderr`` at call time.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        config = check_config(path, registry=load_registry())
    except ConfigError as exc:
        print(format_problems(exc, path), file=err)
        return 1
    count = len(config.tenants)
    print(f"OK: {path} ({count} tenant{'' if count == 1 else 's'})", file=out)
    return 0
