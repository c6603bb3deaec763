"""Routing a backchannel request to a connector instance (DESIGN.md section 6).

Rules, in order:

1. For each acr in the request's ``acr_values`` (in the client's order), the
   first route whose ``acr`` equals it and whose ``login_hint`` pattern (if any)
   matches the hint.
2. Otherwise the first route without ``acr`` whose pattern matches the hint.
3. Otherwise the request is refused with ``invalid_request``: the request asks
   for something this tenant does not serve. ``unknown_user_id`` would wrongly
   claim the user is unknown, and silently ignoring acr_values could route a
   request to a weaker scheme than the client asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from ciba_gateway.config.model import RouteConfig
from ciba_gateway.connector import LoginHint
from ciba_gateway.errors import InvalidRequestError
from ciba_gateway.protocol.hints import KIND_ALIASES

__all__ = ["hint_matches", "select_route"]


def hint_matches(pattern: str, hint: LoginHint) -> bool:
    """Whether a route's ``login_hint`` pattern selects ``hint``.

    A pattern without ``:`` is matched against the kind alone (``ssn``, ``tel``);
    otherwise it is an ``fnmatchcase`` glob on ``kind:value`` (``tel:+46*``). An
    ``ssn`` hint with a country also matches as ``ssn:<country>:<value>``, so
    ``ssn:NO:*`` selects Norwegian numbers. The aliases ``phone`` and ``sub:ssn``
    work in patterns too.
    """
    kind, sep, rest = pattern.partition(":")
    kind = KIND_ALIASES.get(kind, kind)
    if not sep:
        return fnmatchcase(hint.kind, kind)
    if kind == "sub" and rest.startswith("ssn:"):
        kind, rest = "ssn", rest[4:]
    glob = f"{kind}:{rest}"
    if fnmatchcase(f"{hint.kind}:{hint.value}", glob):
        return True
    return hint.country is not None and fnmatchcase(
        f"{hint.kind}:{hint.country}:{hint.value}", glob
    )


def _hint_ok(route: RouteConfig, hint: LoginHint) -> bool:
    return route.login_hint is None or hint_matches(route.login_hint, hint)


def select_route(
    routes: Sequence[RouteConfig], acr_values: Sequence[str], hint: LoginHint
) -> RouteConfig:
    """The route that serves this request; raises InvalidRequestError when none does."""
    for acr in acr_values:
        for route in routes:
            if route.acr == acr and _hint_ok(route, hint):
                return route
    for route in routes:
        if route.acr is None and _hint_ok(route, hint):
            return route
    wanted = f"acr_values {' '.join(acr_values)!r} and " if acr_values else ""
    raise InvalidRequestError(
        f"no authentication method of this provider serves {wanted}a login hint of kind "
        f"{hint.kind!r}"
    )
