"""Packaging and docs: entry points, README coverage of every setting, the import rule."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_smslink.config import Config, RateLimit
from ciba_gateway_smslink.connector import SmsLinkConnector
from ciba_gateway_smslink.directory import AllowedNumber, AllowListDirectory, HttpDirectory
from ciba_gateway_smslink.senders import (
    BasicAuth,
    BearerAuth,
    ConsoleSender,
    FieldNames,
    HttpSender,
    HttpSenderConfig,
    OutboxSender,
    OutboxSenderConfig,
)

from ciba_gateway.connector import HttpSettings, load_registry

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_entry_points_register_connector_and_senders() -> None:
    """The distribution registers the connector and the three built-in senders."""
    from importlib.metadata import entry_points

    senders = {ep.name: ep.load() for ep in entry_points(group="ciba_gateway_smslink.senders")}

    assert load_registry(strict=True).connector("smslink") is SmsLinkConnector
    assert senders == {"console": ConsoleSender, "outbox": OutboxSender, "http": HttpSender}


@pytest.mark.parametrize(
    "struct",
    [
        Config,
        RateLimit,
        AllowListDirectory,
        AllowedNumber,
        HttpDirectory,
        OutboxSenderConfig,
        HttpSenderConfig,
        FieldNames,
        BasicAuth,
        BearerAuth,
        HttpSettings,
    ],
    ids=lambda s: s.__name__,
)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every setting (by its YAML name) is named in README.md."""
    names = [field.encode_name for field in msgspec.structs.fields(struct)]

    missing = [name for name in names if f"`{name}" not in README and f"{name}:" not in README]

    assert missing == []


def test_connector_imports_only_the_public_api_of_the_core() -> None:
    """The connector's modules import nothing from ciba_gateway but ciba_gateway.connector."""
    offending = []
    for path in (ROOT / "src" / "ciba_gateway_smslink").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "ciba_gateway" and module != "ciba_gateway.connector":
                    offending.append(f"{path.name}: {module}")
                if top == "litestar":
                    offending.append(f"{path.name}: {module}")

    assert offending == []
