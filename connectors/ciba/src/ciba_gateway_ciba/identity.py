"""Verified upstream claims -> ``Identity``, and the check that it is the person asked for.

The mapping is declarative (``ClaimMapping``). A claim that is absent or of
the wrong type is left out, except the subject, without which there is no
identity. The hint check compares what the hint names with what the upstream
returned for it, whenever the upstream returned it: the national id for an
``ssn`` hint, ``phone_number`` for ``tel``, ``email`` (case-insensitive) for
``email``.
"""

from __future__ import annotations

from typing import Any

from ciba_gateway.connector import Identity, LoginHint
from ciba_gateway_ciba.config import ClaimMapping

__all__ = ["MappingError", "hint_mismatch", "to_identity"]

_SCALARS = (str, int, float, bool)


class MappingError(Exception):
    """The verified claims cannot make an Identity (no subject)."""


def to_identity(claims: dict[str, Any], mapping: ClaimMapping, now: float) -> Identity:
    """The Identity the mapping makes of ``claims``."""
    subject = claims.get(mapping.subject)
    if not isinstance(subject, str | int) or isinstance(subject, bool) or subject == "":
        raise MappingError(f"the ID token has no usable {mapping.subject!r} claim")
    national_id = _text(claims, mapping.national_id)
    country = _text(claims, mapping.country) or (mapping.default_country if national_id else None)
    acr = _text(claims, mapping.acr) or mapping.acr_default
    amr_claim = claims.get(mapping.amr) if mapping.amr else None
    amr = tuple(v for v in amr_claim if isinstance(v, str)) if isinstance(amr_claim, list) else ()
    auth_time = claims.get("auth_time")
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        auth_time = int(now)
    mapped = {
        ours: claims[theirs]
        for ours, theirs in mapping.claims.items()
        if isinstance(claims.get(theirs), _SCALARS)
    }
    return Identity(
        scheme=mapping.scheme,
        subject=str(subject),
        claims=mapped,
        national_id=national_id,
        country=country.upper() if country else None,
        acr=acr,
        amr=amr,
        auth_time=auth_time,
    )


def _text(claims: dict[str, Any], name: str | None) -> str | None:
    value = claims.get(name) if name else None
    return value if isinstance(value, str) and value else None


def hint_mismatch(identity: Identity, hint: LoginHint) -> str | None:
    """Why ``identity`` is not the person ``hint`` names, or None when nothing contradicts it."""
    if hint.kind == "ssn" and identity.national_id is not None:
        if identity.national_id != hint.value:
            return "the upstream authenticated another national id than the one asked for"
        if hint.country and identity.country and identity.country != hint.country:
            return "the upstream authenticated a national id of another country"
    if hint.kind == "tel":
        phone = identity.claims.get("phone_number")
        if isinstance(phone, str) and phone.replace(" ", "") != hint.value:
            return "the upstream authenticated another phone number than the one asked for"
    if hint.kind == "email":
        email = identity.claims.get("email")
        if isinstance(email, str) and email.lower() != hint.value.lower():
            return "the upstream authenticated another email address than the one asked for"
    return None
