"""The Freja eID RP REST wire format (UPSTREAMS.md section 2), shared by connector and simulator.

Every operation is a ``POST`` whose body is one form-style parameter holding the
standard-alphabet base64 of UTF-8 JSON, not percent-encoded::

    initAuthRequest=eyJ1c2VySW5mb1R5cGUiOiJFTUFJTCIsInVzZXJJbmZvIjoiYUBiLnNlIn0=

optionally followed by ``&relyingPartyId=<id>`` (integrators acting for another
RP). Answers are JSON: 200 on success, 400/422 with ``{"code", "message"}`` on
error. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final, Literal, get_args
from urllib.parse import quote, unquote

import msgspec

from ciba_gateway.connector import decode_json

__all__ = [
    "ATTRIBUTES",
    "ERROR_MESSAGES",
    "FINAL_STATUSES",
    "LEVELS",
    "OPERATIONS",
    "PARAMETERS",
    "PATHS",
    "Attribute",
    "AttributeRequest",
    "AuthRefRequest",
    "AuthResult",
    "AuthResults",
    "BasicUserInfo",
    "BodyError",
    "DataToSign",
    "EmailEntry",
    "ErrorBody",
    "InitAuthRequest",
    "InitAuthResponse",
    "InitSignRequest",
    "InitSignResponse",
    "Level",
    "Operation",
    "ParsedBody",
    "PhoneEntry",
    "RequestedAttributes",
    "ResultsRequest",
    "SignRefRequest",
    "SignResult",
    "SsnAttribute",
    "Status",
    "UserInfoType",
    "decode_body",
    "decode_ssn_user_info",
    "encode_body",
    "encode_ssn_user_info",
    "level_rank",
]

Operation = Literal[
    "initAuthentication",
    "getOneResult",
    "getResults",
    "cancel",
    "initSignature",
    "getOneSignResult",
    "cancelSignature",
]

PATHS: Final[dict[Operation, str]] = {
    "initAuthentication": "/authentication/1.0/initAuthentication",
    "getOneResult": "/authentication/1.0/getOneResult",
    "getResults": "/authentication/1.0/getResults",
    "cancel": "/authentication/1.0/cancel",
    "initSignature": "/sign/1.0/initSignature",
    "getOneSignResult": "/sign/1.0/getOneResult",
    "cancelSignature": "/sign/1.0/cancel",
}
"""Path of each operation, relative to the service base URL."""

OPERATIONS: Final[dict[str, Operation]] = {path: op for op, path in PATHS.items()}
"""The operation served at each path."""

PARAMETERS: Final[dict[Operation, str]] = {
    "initAuthentication": "initAuthRequest",
    "getOneResult": "getOneAuthResultRequest",
    "getResults": "getAuthResultsRequest",
    "cancel": "cancelAuthRequest",
    "initSignature": "initSignRequest",
    "getOneSignResult": "getOneSignResultRequest",
    "cancelSignature": "cancelSignRequest",
}
"""The body parameter name of each operation."""

Level = Literal["BASIC", "EXTENDED", "PLUS"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
"""Registration levels, weakest first (BASIC: email; EXTENDED: ID document; PLUS: in person)."""

UserInfoType = Literal["EMAIL", "PHONE", "SSN", "INFERRED", "UPI", "ORG_ID"]

Status = Literal[
    "STARTED", "DELIVERED_TO_MOBILE", "CANCELED", "RP_CANCELED", "EXPIRED", "APPROVED", "REJECTED"
]
FINAL_STATUSES: Final[frozenset[str]] = frozenset(
    {"CANCELED", "RP_CANCELED", "EXPIRED", "APPROVED", "REJECTED"}
)

Attribute = Literal[
    "BASIC_USER_INFO",
    "EMAIL_ADDRESS",
    "ALL_EMAIL_ADDRESSES",
    "ALL_PHONE_NUMBERS",
    "DATE_OF_BIRTH",
    "AGE",
    "SSN",
    "ADDRESSES",
    "RELYING_PARTY_USER_ID",
    "INTEGRATOR_SPECIFIC_USER_ID",
    "CUSTOM_IDENTIFIER",
    "ORGANISATION_ID_IDENTIFIER",
    "ORGANISATION_ID",
    "REGISTRATION_LEVEL",
    "PHOTO",
    "DOCUMENT",
    "DOCUMENT_PHOTO",
    "NFC_ID_PHOTO",
    "GENDER",
    "LOA_LEVEL",
    "UNIQUE_PERSONAL_IDENTIFIER",
    "NETWORK_INFO",
    "COVID_CERTIFICATES",
    "DOCUMENT_INFO_WITH_PDF",
    "CHILDREN_DOCUMENT_INFO_WITH_PDF",
]
ATTRIBUTES: Final[tuple[str, ...]] = get_args(Attribute)

ERROR_MESSAGES: Final[dict[int, str]] = {
    0: "Internal error.",
    1000: "Invalid parameters.",
    1001: "Invalid or missing userInfoType.",
    1002: "Invalid or missing userInfo.",
    1003: "Invalid restrict.",
    1004: "You are not allowed to call this method.",
    1005: "User has disabled your service.",
    1006: "Invalid confidential.",
    1007: "Invalid min registration level.",
    1008: "Unknown Relying party.",
    1009: "You are not allowed to request integratorSpecificUserId parameter.",
    1010: "JSON request cannot be parsed.",
    1011: "Invalid relyingPartyId.",
    1012: "User with the specified userInfo does not exist in Freja eID database.",
    1013: "You are not allowed to request custodianship info.",
    1100: "Invalid reference (for example, nonexistent or expired).",
    1200: "Invalid or missing includePrevious parameter.",
    2000: "Authentication request failed. Previous authentication request was rejected "
    "due to security reasons.",
    2002: "Invalid attributesToReturn parameter.",
    2003: "Custom identifier has to exist when it is requested.",
}
"""Freja's error codes (UPSTREAMS.md 2.5) with a message in the style of the service's own."""


def level_rank(level: str | None) -> int:
    """Order of a registration level (BASIC 0 < EXTENDED 1 < PLUS 2); unknown or None is -1."""
    try:
        return LEVELS.index(level)  # type: ignore[arg-type]
    except ValueError:
        return -1


# --- request and answer bodies -------------------------------------------------


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Freja's JSON uses camelCase keys; absent optionals are omitted, not null."""


class AttributeRequest(_Wire, frozen=True):
    """One entry of ``attributesToReturn``."""

    attribute: str


class InitAuthRequest(_Wire, frozen=True, forbid_unknown_fields=True):
    """The JSON inside ``initAuthRequest`` (UPSTREAMS.md 2.2), in the field order we send."""

    user_info_type: str
    user_info: str
    min_registration_level: str | None = None
    attributes_to_return: tuple[AttributeRequest, ...] | None = None
    user_confirmation_method: str | None = None
    org_id_issuer: str | None = None
    origin_device_details: dict[str, Any] | None = None
    use_dynamic_qr_code: bool | None = None


class DataToSign(_Wire, frozen=True, forbid_unknown_fields=True):
    """``dataToSign`` of a ``SIMPLE_UTF8_TEXT`` signature: base64 of the UTF-8 text."""

    text: str


class InitSignRequest(_Wire, frozen=True, forbid_unknown_fields=True):
    """The JSON inside ``initSignRequest`` (UPSTREAMS.md 2.7)."""

    user_info_type: str
    user_info: str
    data_to_sign_type: str
    """``SIMPLE_UTF8_TEXT`` (required: defaults are omitted when encoding)."""
    data_to_sign: DataToSign
    signature_type: str
    """``SIMPLE``."""
    min_registration_level: str | None = None
    title: str | None = None
    expiry: int | None = None
    """Absolute epoch milliseconds; Freja's default is now + 2 minutes."""
    attributes_to_return: tuple[AttributeRequest, ...] | None = None


class InitSignResponse(_Wire, frozen=True):
    """Answer to initSignature."""

    sign_ref: str


class SignRefRequest(_Wire, frozen=True, forbid_unknown_fields=True):
    """The JSON of ``getOneSignResultRequest`` and ``cancelSignRequest``."""

    sign_ref: str


class SignResult(_Wire, frozen=True):
    """One signature result; its ``details`` JWS payload carries ``signatureData``."""

    sign_ref: str
    status: str
    details: str | None = None
    requested_attributes: dict[str, Any] | None = None

    def as_auth_result(self) -> AuthResult:
        """The same answer in the shape of an authentication result (``signRef`` as ref)."""
        return AuthResult(
            auth_ref=self.sign_ref,
            status=self.status,
            details=self.details,
            requested_attributes=self.requested_attributes,
        )


class InitAuthResponse(_Wire, frozen=True):
    """Answer to initAuthentication."""

    auth_ref: str


class AuthRefRequest(_Wire, frozen=True, forbid_unknown_fields=True):
    """The JSON of ``getOneAuthResultRequest`` and ``cancelAuthRequest``."""

    auth_ref: str


class ResultsRequest(_Wire, frozen=True, forbid_unknown_fields=True):
    """The JSON of ``getAuthResultsRequest``."""

    include_previous: str


class AuthResult(_Wire, frozen=True):
    """One authentication result (UPSTREAMS.md 2.3); ``details`` only when APPROVED."""

    auth_ref: str
    status: str
    details: str | None = None
    requested_attributes: dict[str, Any] | None = None
    freja_cookie: str | None = None


class AuthResults(_Wire, frozen=True):
    """Answer to getResults."""

    authentication_results: tuple[AuthResult, ...] = ()


class ErrorBody(_Wire, frozen=True):
    """An error answer: ``{"code": n, "message": "..."}``."""

    code: int
    message: str = ""


class BasicUserInfo(_Wire, frozen=True):
    """``basicUserInfo``: Freja's ``name`` is the given name."""

    name: str | None = None
    surname: str | None = None


class SsnAttribute(_Wire, frozen=True):
    """``ssn``: national identity number and its ISO 3166 alpha-2 country."""

    ssn: str
    country: str


class EmailEntry(_Wire, frozen=True):
    """An element of ``allEmailAddresses``."""

    email_address: str


class PhoneEntry(_Wire, frozen=True):
    """An element of ``allPhoneNumbers``."""

    phone_number: str


class RequestedAttributes(_Wire, frozen=True):
    """The ``requestedAttributes`` the connector uses (others are ignored)."""

    basic_user_info: BasicUserInfo | None = None
    email_address: str | None = None
    all_email_addresses: tuple[EmailEntry, ...] | None = None
    all_phone_numbers: tuple[PhoneEntry, ...] | None = None
    date_of_birth: str | None = None
    age: int | None = None
    ssn: SsnAttribute | None = None
    relying_party_user_id: str | None = None
    unique_personal_identifier: str | None = None
    registration_level: str | None = None
    loa_level: str | None = None
    gender: str | None = None


# --- the body encoding -------------------------------------------------------------


class BodyError(ValueError):
    """A request body that is not ``<name>=<base64(JSON)>``."""


class ParsedBody(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded request body: parameter name, its JSON bytes, optional relyingPartyId."""

    parameter: str
    json: bytes
    relying_party_id: str | None = None


def encode_body(
    operation: Operation, payload: msgspec.Struct, relying_party_id: str | None = None
) -> bytes:
    """The body of ``operation`` as the official client sends it (base64 not percent-encoded)."""
    data = base64.b64encode(msgspec.json.encode(payload)).decode("ascii")
    body = f"{PARAMETERS[operation]}={data}"
    if relying_party_id is not None:
        body += f"&relyingPartyId={quote(relying_party_id, safe='')}"
    return body.encode("ascii")


def decode_body(raw: bytes) -> ParsedBody:
    """Parse a request body leniently: split on the first ``&`` and ``=``, undo percent-encoding.

    Raises:
        BodyError: no ``name=value`` pair, or the value is not base64.
    """
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8") from None
    first, _, rest = text.partition("&")
    name, sep, value = first.partition("=")
    if not sep or not name:
        raise BodyError("the body is not <parameter>=<base64>")
    if "%" in value:
        # unquote, not unquote_plus: a literal "+" is part of the base64 alphabet.
        value = unquote(value)
    value = value.strip()
    value += "=" * (-len(value) % 4)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BodyError("the parameter value is not base64") from None
    relying_party_id = None
    for pair in rest.split("&") if rest else ():
        key, _, item = pair.partition("=")
        if key == "relyingPartyId":
            relying_party_id = unquote(item)
    return ParsedBody(parameter=unquote(name), json=data, relying_party_id=relying_party_id)


def encode_ssn_user_info(country: str, ssn: str) -> str:
    """``userInfo`` for SSN: base64 of ``{"country":"SE","ssn":"..."}`` (keys in that order)."""
    return base64.b64encode(msgspec.json.encode({"country": country, "ssn": ssn})).decode("ascii")


def decode_ssn_user_info(value: str) -> tuple[str, str]:
    """``(country, ssn)`` from an SSN ``userInfo``; raises ValueError when malformed."""
    try:
        data = decode_json(base64.b64decode(value + "=" * (-len(value) % 4), validate=True))
    except (binascii.Error, msgspec.DecodeError) as exc:
        raise ValueError("SSN userInfo is not base64 of JSON") from exc
    if not isinstance(data, dict) or set(data) != {"country", "ssn"}:
        raise ValueError('SSN userInfo must hold exactly "country" and "ssn"')
    country, ssn = data["country"], data["ssn"]
    if not (isinstance(country, str) and isinstance(ssn, str)):
        raise ValueError("SSN userInfo country and ssn must be strings")
    return country, ssn
