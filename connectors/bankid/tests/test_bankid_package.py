"""Packaging and docs: the entry point, README coverage of every setting, personnummer helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_bankid.connector import BankIDConnector, Config
from ciba_gateway_bankid.personnummer import birthdate, is_valid

from ciba_gateway.connector import HttpSettings, load_registry

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_entry_point_registers_the_connector() -> None:
    """The distribution registers the connector class as bankid (its simulator: bankid-sim)."""
    assert load_registry(strict=True).connector("bankid") is BankIDConnector


@pytest.mark.parametrize("struct", [Config, HttpSettings], ids=repr)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every Config field is named in README.md."""
    missing = [name for name in struct.__struct_fields__ if f"`{name}`" not in README]

    assert missing == []


@pytest.mark.parametrize(
    ("number", "born"),
    [
        ("199001011239", dt.date(1990, 1, 1)),
        ("191212121212", dt.date(1912, 12, 12)),
        ("199001611231", dt.date(1990, 1, 1)),  # samordningsnummer: day + 60
        ("199013011239", None),
        ("19900101123", None),
    ],
)
def test_birthdate(number: str, born: dt.date | None) -> None:
    """Birthdates come from the number, minus 60 days-of-month for a samordningsnummer."""
    assert birthdate(number) == born


def test_check_digit() -> None:
    """Luhn check digits are enforced."""
    assert is_valid("199001011239")
    assert not is_valid("199001011238")
