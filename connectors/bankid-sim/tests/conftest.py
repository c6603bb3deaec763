"""Fixtures: the BankID simulator served in-process with a hand-moved clock (bankid_support)."""

from bankid_support import (  # noqa: F401 - fixtures, shared with the connector's tests
    app,
    clock,
    http,
    make_simulator,
    sim,
    sleeps,
)
