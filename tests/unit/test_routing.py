"""Route selection by acr_values, then login hint kind."""

from __future__ import annotations

import pytest

from ciba_gateway.config.model import RouteConfig
from ciba_gateway.connector import LoginHint
from ciba_gateway.errors import InvalidRequestError
from ciba_gateway.protocol.routing import hint_matches, select_route

ROUTES = (
    RouteConfig(acr="urn:bankid", connector="bankid"),
    RouteConfig(acr="urn:freja", login_hint="ssn", connector="freja"),
    RouteConfig(acr="urn:freja", connector="freja-any"),
    RouteConfig(login_hint="tel:+46*", connector="sms-se"),
    RouteConfig(login_hint="ssn", connector="fallback"),
)
SSN = LoginHint(kind="ssn", value="199001011239", country="SE")
TEL = LoginHint(kind="tel", value="+46701234567")


def test_acr_values_are_tried_in_the_clients_order() -> None:
    """The first acr the client lists that a route serves wins."""
    assert select_route(ROUTES, ["urn:none", "urn:freja", "urn:bankid"], SSN).connector == "freja"


def test_hint_pattern_narrows_an_acr_route() -> None:
    """An acr route with a hint pattern is skipped for other hint kinds."""
    assert select_route(ROUTES, ["urn:freja"], TEL).connector == "freja-any"


def test_without_acr_values_the_hint_decides() -> None:
    """Without acr_values, the first route without acr whose pattern matches wins."""
    assert select_route(ROUTES, [], TEL).connector == "sms-se"
    assert select_route(ROUTES, [], SSN).connector == "fallback"


def test_unserved_request_is_invalid_request() -> None:
    """A hint no route serves is refused with invalid_request naming the kind."""
    with pytest.raises(InvalidRequestError, match="'email'"):
        select_route(ROUTES, [], LoginHint(kind="email", value="a@b.se"))
    with pytest.raises(InvalidRequestError):
        select_route(ROUTES, [], LoginHint(kind="tel", value="+4712345678"))


class TestHintMatches:
    SE = LoginHint(kind="ssn", value="199001011239", country="SE")
    NO = LoginHint(kind="ssn", value="15108695088", country="NO")
    TEL = LoginHint(kind="tel", value="+46701234567")

    def test_bare_kind(self) -> None:
        """A pattern without ':' compares the kind only."""
        assert hint_matches("ssn", self.SE)
        assert hint_matches("tel", self.TEL)
        assert not hint_matches("tel", self.SE)

    def test_glob_on_kind_and_value(self) -> None:
        """tel:+46* selects Swedish mobile numbers only."""
        assert hint_matches("tel:+46*", self.TEL)
        assert not hint_matches("tel:+47*", self.TEL)
        assert hint_matches("tel:*", self.TEL)
        assert not hint_matches("tel:*", self.SE)

    def test_country_form_for_ssn(self) -> None:
        """ssn:NO:* selects Norwegian numbers and ssn:* selects both."""
        assert hint_matches("ssn:NO:*", self.NO)
        assert not hint_matches("ssn:NO:*", self.SE)
        assert hint_matches("ssn:*", self.NO)
        assert hint_matches("ssn:1990*", self.SE)

    def test_aliases_in_patterns(self) -> None:
        """phone and sub:ssn work in patterns as they do in hints."""
        assert hint_matches("phone:+46*", self.TEL)
        assert hint_matches("phone", self.TEL)
        assert hint_matches("sub:ssn:SE:*", self.SE)

    def test_match_is_case_sensitive(self) -> None:
        """fnmatchcase semantics: SSN is not ssn."""
        assert not hint_matches("SSN", self.SE)
        assert hint_matches("*", self.SE)
