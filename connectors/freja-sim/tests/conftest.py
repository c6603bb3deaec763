"""Fixtures: the Freja simulator served in-process with a hand-moved clock (freja_support)."""

from freja_support import (  # noqa: F401 - fixtures, shared with the connector's tests
    app,
    clock,
    http,
    make_simulator,
    sim,
    sleeps,
)
