"""The ``sub`` of an identity and the claims each granted scope releases.

``sub``
    ``hashed`` (default): base64url(HMAC-SHA256(salt, "scheme:subject")), so
    a national id never becomes ``sub``; ``national_id``: "scheme:subject".

Scope -> claims (the public contract, also advertised in discovery)
    ==========  ==========================================================
    ``profile`` ``name``, ``given_name``, ``family_name``, ``birthdate``
    ``ssn``     ``ssn`` (the national id), ``ssn_country`` (ISO 3166 alpha-2)
    ``phone``   ``phone_number``, ``phone_number_verified``
    ``email``   ``email``, ``email_verified``
    ==========  ==========================================================

    A claim appears only when its scope is granted and the connector knows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ciba_gateway.config.model import SubjectConfig
    from ciba_gateway.connector.api import Identity

__all__ = ["SCOPE_CLAIMS", "claims_for_scopes", "subject_for"]

SCOPE_CLAIMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "profile": ("name", "given_name", "family_name", "birthdate"),
        "ssn": ("ssn", "ssn_country"),
        "phone": ("phone_number", "phone_number_verified"),
        "email": ("email", "email_verified"),
    }
)
"""The claims each scope releases (module docstring)."""


def subject_for(subject: SubjectConfig, identity: Identity) -> str:
    """The ``sub`` of ``identity`` under the tenant's subject policy."""
    value = f"{identity.scheme}:{identity.subject}"
    if subject.mode == "national_id":
        return value
    digest = hmac.new(subject.salt.encode(), value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def claims_for_scopes(identity: Identity, scopes: Iterable[str]) -> dict[str, Any]:
    """The claims of ``identity`` that the granted ``scopes`` release (``SCOPE_CLAIMS``)."""
    claims: dict[str, Any] = {}
    for scope in scopes:
        if scope == "ssn":
            if identity.national_id:
                claims["ssn"] = identity.national_id
                if identity.country:
                    claims["ssn_country"] = identity.country
            continue
        for name in SCOPE_CLAIMS.get(scope, ()):
            value = identity.claims.get(name)
            if value is not None:
                claims[name] = value
    return claims
