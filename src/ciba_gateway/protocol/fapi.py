"""``profile: fapi-ciba``: the FAPI-CIBA requirements a request decides, one named check each.

The configuration-time clauses (no push, strong client authentication,
sender-constrained tokens, PS256/ES256 keys, routes with an acr, key sizes) are
in ``ciba_gateway.config.fapi`` and refuse the config. Here, for a client
following the profile:

- ``FAPI_CHECKS`` run at bc-authorize after the other checks (the
  ``check_fapi_profile`` step of ``backchannel.STEPS``);
- ``fapi_algs`` narrows the algorithms accepted for its request objects
  (``backchannel.unpack_request_object``) and client assertions
  (``client_auth``) to PS256 and ES256 (FAPI 1.0 Part 2 8.6-1);
- a signed request's lifetime (FAPI-CIBA 5.2.2-9, FAPI 1.0 Part 2 5.2.2-13/-17:
  ``nbf`` and ``exp`` present, ``exp - nbf`` at most 60 minutes, ``nbf`` at most 60
  minutes old) holds for every tenant already: ``jose.verify_request_object``
  (CIBA Core 7.1.1) requires both claims, the 60-minute span and an ``exp`` in the
  future, which together leave ``nbf`` less than 60 minutes in the past. Unsigned
  requests stay allowed (FAPI-CIBA 5.2.2-6 "shall support unsigned and signed");
- sender-constrained tokens (FAPI 1.0 Part 2 5.2.2-5) are the client's
  ``tls_client_certificate_bound_access_tokens``: the token endpoint refuses a
  request without a certificate and binds the tokens to it (RFC 8705).

A client that does not follow the profile pays for one comparison per
bc-authorize request and nothing at the token endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from ciba_gateway.config.fapi import FAPI_ALGS, is_fapi
from ciba_gateway.errors import InvalidRequestError

if TYPE_CHECKING:
    from ciba_gateway.config.model import ClientConfig, TenantConfig
    from ciba_gateway.protocol.backchannel import BackchannelRequest

__all__ = ["FAPI_CHECKS", "fapi_algs", "is_fapi", "run_fapi_checks"]


def require_binding_context(req: BackchannelRequest) -> None:
    """FAPI-CIBA 5.2.2-2: a binding_message, or a unique authorization context.

    The unique context this gateway accepts is ``authorization_details`` (RFC
    9396): the user approves the very transaction shown to them.
    """
    if req.binding_message is None and not req.authorization_details:
        raise InvalidRequestError(
            "FAPI-CIBA 5.2.2-2: a binding_message or authorization_details is required"
        )


FAPI_CHECKS: tuple[Callable[[BackchannelRequest], None], ...] = (require_binding_context,)
"""The request-time checks of a fapi-ciba client at bc-authorize, in order."""


def run_fapi_checks(req: BackchannelRequest) -> None:
    """Run ``FAPI_CHECKS`` when the request's client follows the profile."""
    if not is_fapi(req.tenant.config, req.the_client):
        return
    for check in FAPI_CHECKS:
        check(req)


def fapi_algs(tenant: TenantConfig, client: ClientConfig, algs: Collection[str]) -> Collection[str]:
    """``algs`` narrowed to PS256 / ES256 for a fapi-ciba client (FAPI 1.0 Part 2 8.6-1)."""
    if not is_fapi(tenant, client):
        return algs
    return tuple(a for a in algs if a in FAPI_ALGS)
