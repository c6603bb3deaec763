"""The BankID RP API v6.0 wire format (UPSTREAMS.md section 1) as msgspec Structs.

Python names are snake_case, wire names camelCase (``rename="camel"``); fields left
at their default are omitted when encoding. The ``Meta`` constraints only act when
decoding, so the simulator validates requests with the very types the client
encodes them from. Response types ignore unknown fields: BankID adds fields to
its answers without changing the version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "AuthRequest",
    "CollectResponse",
    "CompletionData",
    "Device",
    "ErrorResponse",
    "OrderRef",
    "OrderResponse",
    "PhoneAuthRequest",
    "PhoneRequirement",
    "PhoneSignRequest",
    "Requirement",
    "SignRequest",
    "User",
]

PersonalNumber = Annotated[str, Meta(pattern=r"^[0-9]{12}$")]
"""12 digits ``YYYYMMDDNNNC``."""

VisibleData = Annotated[str, Meta(min_length=1, max_length=1_500)]
"""Base64 of UTF-8 text, 1-1 500 characters after encoding (auth)."""

SignVisibleData = Annotated[str, Meta(min_length=1, max_length=40_000)]
"""Base64 of UTF-8 text, 1-40 000 characters after encoding (sign)."""

NonVisibleData = Annotated[str, Meta(min_length=1, max_length=1_500)]

CallInitiator = Literal["user", "RP"]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    pass


# --- requests ---------------------------------------------------------------


class Requirement(_Wire):
    """``requirement`` of /auth and /sign (section 1.5)."""

    pin_code: bool | None = None
    mrtd: bool | None = None
    card_reader: Literal["class1", "class2"] | None = None
    certificate_policies: tuple[Annotated[str, Meta(min_length=1)], ...] | None = None
    personal_number: PersonalNumber | None = None
    risk: Literal["low", "moderate"] | None = None


class PhoneRequirement(_Wire):
    """``requirement`` of /phone/auth and /phone/sign (section 1.4)."""

    pin_code: bool | None = None
    card_reader: Literal["class1", "class2"] | None = None
    certificate_policies: tuple[Annotated[str, Meta(min_length=1)], ...] | None = None


class AuthRequest(_Wire):
    """Body of ``POST /auth`` (section 1.2)."""

    end_user_ip: Annotated[str, Meta(min_length=1, max_length=45)]
    requirement: Requirement | None = None
    user_visible_data: VisibleData | None = None
    user_visible_data_format: Literal["simpleMarkdownV1"] | None = None
    user_non_visible_data: NonVisibleData | None = None
    return_url: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
    return_risk: bool | None = None
    web: dict[str, Any] | None = None
    app: dict[str, Any] | None = None


class SignRequest(_Wire):
    """Body of ``POST /sign`` (section 1.3): like /auth, ``userVisibleData`` required."""

    end_user_ip: Annotated[str, Meta(min_length=1, max_length=45)]
    user_visible_data: SignVisibleData
    requirement: Requirement | None = None
    user_visible_data_format: Literal["simpleMarkdownV1"] | None = None
    user_non_visible_data: Annotated[str, Meta(min_length=1, max_length=200_000)] | None = None
    return_url: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
    return_risk: bool | None = None
    web: dict[str, Any] | None = None
    app: dict[str, Any] | None = None


class PhoneAuthRequest(_Wire):
    """Body of ``POST /phone/auth`` (section 1.4)."""

    personal_number: PersonalNumber
    call_initiator: CallInitiator
    requirement: PhoneRequirement | None = None
    user_visible_data: VisibleData | None = None
    user_visible_data_format: Literal["simpleMarkdownV1"] | None = None
    user_non_visible_data: NonVisibleData | None = None


class PhoneSignRequest(_Wire):
    """Body of ``POST /phone/sign`` (section 1.4)."""

    personal_number: PersonalNumber
    call_initiator: CallInitiator
    user_visible_data: SignVisibleData
    requirement: PhoneRequirement | None = None
    user_visible_data_format: Literal["simpleMarkdownV1"] | None = None
    user_non_visible_data: Annotated[str, Meta(min_length=1, max_length=200_000)] | None = None


class OrderRef(_Wire):
    """Body of ``POST /collect`` and ``POST /cancel``."""

    order_ref: Annotated[str, Meta(min_length=1, max_length=100)]


# --- responses --------------------------------------------------------------


class OrderResponse(_Wire):
    """Answer to a start call; the phone variants carry only ``orderRef`` (section 1.6)."""

    order_ref: str
    auto_start_token: str | None = None
    qr_start_token: str | None = None
    qr_start_secret: str | None = None


class User(_Wire):
    """``completionData.user``."""

    personal_number: str
    name: str = ""
    given_name: str = ""
    surname: str = ""


class Device(_Wire):
    """``completionData.device``."""

    ip_address: str | None = None
    uhi: str | None = None


class CompletionData(_Wire):
    """``completionData`` of a complete order (section 1.7); odd fields are kept raw."""

    user: User
    device: Device | None = None
    step_up: Any = None
    bank_id_issue_date: str | None = None
    signature: str | None = None
    ocsp_response: str | None = None
    risk: str | None = None


class CollectResponse(_Wire):
    """Answer to ``POST /collect``: ``status`` is pending, failed or complete."""

    order_ref: str
    status: str
    hint_code: str | None = None
    completion_data: CompletionData | None = None


class ErrorResponse(_Wire):
    """Body of every non-2xx answer (section 1.9)."""

    error_code: str
    details: str = ""
