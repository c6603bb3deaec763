"""The ``smslink`` connector's settings in a tenant's YAML (documented in README.md)."""

from __future__ import annotations

import re
from string import Formatter
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ciba_gateway_smslink.directory import Directory
from ciba_gateway_smslink.senders import check_sender_spec

__all__ = ["DEFAULT_ACR", "DEFAULT_TEMPLATE", "TEMPLATE_FIELDS", "Config", "RateLimit"]

DEFAULT_ACR = "urn:ciba-gateway:acr:sms-link"
"""Low assurance: possession of a phone number (NIST treats SMS as restricted)."""

DEFAULT_TEMPLATE = "{client_name} asks you to confirm: {binding_message}. Open {link}"

TEMPLATE_FIELDS = frozenset({"client_name", "binding_message", "link"})

_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")


def _check_template(template: str) -> None:
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"message_template: {exc}") from None
    names = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise ValueError(
                f"message_template may use only {{client_name}}, {{binding_message}} and "
                f"{{link}}, not {{{name}}}"
            )
        names.add(name)
    if "link" not in names:
        raise ValueError("message_template must contain {link}")


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sends allowed per fixed ``window`` of seconds; null disables a limit."""

    per_number: Annotated[int, Meta(ge=1)] | None = 3
    per_client: Annotated[int, Meta(ge=1)] | None = 100
    window: Annotated[int, Meta(ge=1, le=86400)] = 600


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``{type: smslink, sender: {...}, ...}``."""

    sender: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "console"})
    """``{type: console | outbox | http | <plugin>, ...its settings}``."""
    acr: str = DEFAULT_ACR
    """The ``acr`` of identities this connector produces (low assurance)."""
    message_template: str = DEFAULT_TEMPLATE
    default_binding_message: Annotated[str, Meta(min_length=1)] = "sign in"
    """Stands in for ``{binding_message}`` when the request has none."""
    allowed_prefixes: tuple[str, ...] = ()
    """E.164 prefixes served (``+46``, ``+4670``); empty serves every number."""
    directory: Directory | None = None
    rate_limit: RateLimit = msgspec.field(default_factory=RateLimit)

    def __post_init__(self) -> None:
        check_sender_spec(self.sender)
        _check_template(self.message_template)
        for prefix in self.allowed_prefixes:
            if not _PREFIX.match(prefix):
                raise ValueError(f"allowed_prefixes: {prefix!r} is not an E.164 prefix like +46")
