"""Packaging and docs: the entry point, README coverage of every setting, config checks."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from ciba_gateway_ciba.config import ClaimMapping, ClientAuth, Config
from ciba_gateway_ciba.connector import CibaConnector

from ciba_gateway.connector import HttpSettings, load_registry

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_entry_point_registers_the_connector() -> None:
    """The distribution registers CibaConnector as ``ciba``."""
    assert load_registry(strict=True).connector("ciba") is CibaConnector


@pytest.mark.parametrize("struct", [Config, ClientAuth, ClaimMapping, HttpSettings], ids=repr)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every field of the connector's config structs is named in README.md."""
    missing = [name for name in struct.__struct_fields__ if f"`{name}`" not in README]

    assert missing == []


BASE = {"issuer": "https://op.example", "client_id": "gw"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth": {"method": "client_secret_basic"}}, "needs secret"),
        ({"auth": {"method": "private_key_jwt"}}, "needs key_file"),
        ({"auth": {"method": "client_secret_post", "secret": "s"}, "scope": ["profile"]}, "openid"),
        (
            {"auth": {"method": "client_secret_post", "secret": "s"}, "login_hint": {"sub": "x"}},
            "ssn, tel or email",
        ),
        (
            {"auth": {"method": "client_secret_post", "secret": "s"}, "login_hint": {"ssn": "{x}"}},
            "bad template",
        ),
        ({"auth": {"method": "client_secret_post", "secret": "s"}, "issuer": "op"}, "issuer"),
        (
            {
                "auth": {"method": "client_secret_post", "secret": "s"},
                "issuer": "http://op.example",
            },
            "https",
        ),
    ],
)
def test_config_refuses_unusable_settings(settings: dict[str, object], message: str) -> None:
    """Missing credentials, no openid scope, unknown hint kinds and bad templates are refused."""
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({**BASE, **settings}, Config)
