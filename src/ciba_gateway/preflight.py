"""Everything ``serve`` checks before it starts, in one pass; ``check-config`` runs the same.

The configuration itself (structure, rules, cross-references: ``config.load``), and
the files it names: each tenant's signing key files (a missing one is fine with
``generate: true``, the gateway creates it on start), the TLS files of each
connector's ``http`` settings, the audit trail's files (appendable), and with
``tracing.enabled`` the packages of the ``otel`` extra. Every
problem carries its YAML path and, when known, its line and column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ciba_gateway.audit import file_problem as audit_file_problem
from ciba_gateway.config.load import load_config, locate, read_document
from ciba_gateway.config.model import GatewayConfig, KeyConfig
from ciba_gateway.connector.outbound import HttpSettings, tls_file_problems
from ciba_gateway.connector.registry import ConnectorRegistry
from ciba_gateway.errors import ConfigError, ConfigProblem
from ciba_gateway.tokens.keys import key_file_problem
from ciba_gateway.tracing import missing_packages

__all__ = ["check_config", "log_refused"]

_T = TypeVar("_T")


def check_config(
    path: str | Path, *, registry: ConnectorRegistry, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Load the configuration at ``path`` and check the files it names.

    Raises:
        ConfigError: every problem found, the model's and the files' together.
    """
    problems: list[ConfigProblem] = []
    config: GatewayConfig | None = None
    try:
        config = load_config(path, registry=registry, env=env)
    except ConfigError as exc:
        problems.extend(exc.problems)
        if any(not p.path and p.line is None for p in exc.problems):
            raise  # not readable, not YAML: there is nothing more to check
    data, locations = read_document(Path(path).read_text(encoding="utf-8"), env)
    for where, message in _file_problems(data):
        line, column = locate(locations, where) or (None, None)
        problems.append(ConfigProblem(where, message, line=line, column=column))
    if problems or config is None:
        raise ConfigError(problems)
    return config


def log_refused(log: Any, exc: ConfigError) -> None:
    """Log each problem of a refused reload as one ``reload_refused`` event."""
    for problem in exc.problems:
        log.error(
            "reload_refused",
            path=problem.path,
            line=problem.line,
            column=problem.column,
            problem=problem.message,
        )


def _file_problems(data: Any) -> Iterator[tuple[str, str]]:
    """``(path, message)`` for each key, TLS or audit file that would not load.

    And for tracing enabled without the packages it needs installed.
    """
    tracing = data.get("tracing") if isinstance(data, dict) else None
    if isinstance(tracing, dict) and tracing.get("enabled") is True:
        exporter = tracing.get("exporter", "otlp")
        missing = missing_packages(exporter if isinstance(exporter, str) else "otlp")
        if missing:
            yield (
                "tracing.enabled",
                "tracing is enabled but the otel extra is not installed "
                f"(missing {', '.join(missing)}): pip install 'ciba-gateway[otel]'",
            )
    audit = data.get("audit") if isinstance(data, dict) else None
    for field in ("file", "evidence_file"):
        value = audit.get(field) if isinstance(audit, dict) else None
        problem = audit_file_problem(value) if isinstance(value, str) and value else None
        if problem:
            yield f"audit.{field}", problem
    tenants = data.get("tenants") if isinstance(data, dict) else None
    for i, tenant in enumerate(tenants if isinstance(tenants, list) else []):
        if not isinstance(tenant, dict):
            continue
        for j, key in enumerate(_list(tenant.get("keys"))):
            cfg = _convert(key, KeyConfig)
            problem = cfg and key_file_problem(cfg)
            if problem:
                yield f"tenants[{i}].keys[{j}].file", problem
        connectors = tenant.get("connectors")
        for name, entry in (connectors if isinstance(connectors, dict) else {}).items():
            http = _convert(entry.get("http", {}) if isinstance(entry, dict) else {}, HttpSettings)
            for field, message in tls_file_problems(http) if http else ():
                where = f"tenants[{i}].connectors.{name}.http"
                yield (f"{where}.{field}" if field else where), message


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _convert(value: Any, cls: type[_T]) -> _T | None:
    """``value`` as ``cls``, or None when it is not one (the model pass reports why)."""
    try:
        return msgspec.convert(value, cls)
    except msgspec.ValidationError:
        return None
