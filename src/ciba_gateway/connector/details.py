"""Typed RFC 9396 ``authorization_details``: validation, canonical digest, the approval text.

Two types are known to the core; every other type is a connector's own (for
example BankID's ``phoneAuth``) and passes through as sent:

``payment_initiation`` (RFC 9396 section 2, its own example)::

    {"type": "payment_initiation", "actions": ["initiate"],
     "locations": ["https://example.com/payments"],
     "instructedAmount": {"currency": "EUR", "amount": "123.50"},
     "creditorName": "Merchant A",
     "creditorAccount": {"iban": "DE02100100109307118603"},
     "remittanceInformationUnstructured": "Ref Number Merchant"}

``approval`` (agent and back-office approvals)::

    {"type": "approval", "title": "Release order 4711",
     "text": "The agent wants to order 3 laptops.",
     "fields": [{"label": "Supplier", "value": "Acme AB"}]}

Limits: every text is 1..N characters (creditorName 70 and remittance 140 as in
SEPA, title 80, text 500, labels 40, values 140, at most 8 fields), NFC-normalised,
without control, format (bidi overrides, zero-width) or separator characters other
than the plain space, and without leading or trailing spaces. Amounts are decimal
strings with at most the currency's ISO 4217 minor-unit digits; IBANs pass the
ISO 13616 mod-97 check. Violations are refused, never repaired.

The text a person sees comes from ``render`` only: the same lines as plain text and
as BankID ``simpleMarkdownV1`` (headings added, every character the format gives a
meaning backslash-escaped). Amounts are written locale-neutrally: the currency's
minor-unit digits after a point, thousands grouped by a space (ISO 80000-1), the
ISO 4217 code after the number: ``1 234.50 EUR``, ``1 000 JPY``, ``12.345 KWD``.

``digest`` is ``sha-256:`` + base64url (unpadded) of SHA-256 over the canonical
JSON of the details: keys sorted, no whitespace, UTF-8 (the shape of RFC 8785 JCS
for the strings-only values of the typed details).
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

__all__ = [
    "APPROVAL",
    "PAYMENT_INITIATION",
    "TYPED_DETAILS",
    "Approval",
    "ApprovalField",
    "CreditorAccount",
    "DetailsProblem",
    "InstructedAmount",
    "PaymentInitiation",
    "Rendering",
    "Section",
    "TypedDetail",
    "canonical_json",
    "check_text",
    "digest",
    "escape_markdown",
    "format_amount",
    "format_iban",
    "minor_units",
    "render",
    "sections",
    "typed",
    "unescape_markdown",
    "validate",
]

PAYMENT_INITIATION: Final = "payment_initiation"
APPROVAL: Final = "approval"


class DetailsProblem(ValueError):
    """An authorization_details entry the gateway refuses; the message is safe to show a client."""


# ISO 4217 active codes. Two minor-unit digits unless listed in _EXPONENTS. Funds,
# precious metals and test codes (XAU, XTS, XXX, ...) have no minor unit and are refused.
_CURRENCIES: Final = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD
    IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN
    PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN
    SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES
    VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)
_EXPONENTS: Final[Mapping[str, int]] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

# Characters simpleMarkdownV1 (or Markdown in general) may read as markup.
_MARKDOWN_SPECIAL: Final = frozenset("\\`*_+#|~[]<>-=")


def minor_units(currency: str) -> int:
    """The ISO 4217 minor-unit digits of ``currency``; raises DetailsProblem when unknown."""
    if currency not in _CURRENCIES:
        raise DetailsProblem(f"currency {currency!r} is not an ISO 4217 currency with minor units")
    return _EXPONENTS.get(currency, 2)


def check_text(value: str, what: str) -> str:
    """Refuse text a person could be misled by: control, format and odd space characters.

    Category C (controls, bidi overrides and isolates, zero-width joiners, private
    use, unassigned) and Z other than U+0020 are refused, so are leading or trailing
    spaces and text that is not NFC (combining tricks).
    """
    for ch in value:
        category = unicodedata.category(ch)
        if category[0] == "C" or (category[0] == "Z" and ch != " "):
            raise DetailsProblem(f"{what} contains a control, format or separator character")
    if value != value.strip(" "):
        raise DetailsProblem(f"{what} must not start or end with spaces")
    if not unicodedata.is_normalized("NFC", value):
        raise DetailsProblem(f"{what} must be NFC-normalised Unicode")
    return value


Text32 = Annotated[str, Meta(min_length=1, max_length=32)]
Text40 = Annotated[str, Meta(min_length=1, max_length=40)]
Text70 = Annotated[str, Meta(min_length=1, max_length=70)]
Text80 = Annotated[str, Meta(min_length=1, max_length=80)]
Text140 = Annotated[str, Meta(min_length=1, max_length=140)]
Text256 = Annotated[str, Meta(min_length=1, max_length=256)]
Text500 = Annotated[str, Meta(min_length=1, max_length=500)]


class _Detail(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    pass


class InstructedAmount(_Detail, frozen=True):
    """RFC 9396 ``instructedAmount``: an ISO 4217 code and a decimal string."""

    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    amount: Annotated[str, Meta(pattern=r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$")]

    def __post_init__(self) -> None:
        places = minor_units(self.currency)
        _, _, fraction = self.amount.partition(".")
        if len(fraction) > places:
            raise DetailsProblem(
                f"amount has more decimals than {self.currency} has minor units ({places})"
            )
        if not any(ch not in "0." for ch in self.amount):
            raise DetailsProblem("amount must be greater than zero")


class CreditorAccount(_Detail, frozen=True):
    """RFC 9396 ``creditorAccount``: an IBAN (ISO 13616), written without spaces."""

    iban: Annotated[str, Meta(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")]

    def __post_init__(self) -> None:
        rearranged = self.iban[4:] + self.iban[:4]
        number = "".join(str(int(ch, 36)) for ch in rearranged)
        if int(number) % 97 != 1:
            raise DetailsProblem("creditorAccount.iban fails the IBAN check digits")


class PaymentInitiation(
    _Detail, frozen=True, tag_field="type", tag=PAYMENT_INITIATION, rename="camel"
):
    """A payment to approve (RFC 9396 section 2's ``payment_initiation``)."""

    instructed_amount: InstructedAmount
    creditor_name: Text70
    creditor_account: CreditorAccount
    remittance_information_unstructured: Text140 | None = None
    actions: Annotated[tuple[Text32, ...], Meta(max_length=8)] | None = None
    locations: Annotated[tuple[Text256, ...], Meta(max_length=4)] | None = None

    def __post_init__(self) -> None:
        check_text(self.creditor_name, "creditorName")
        if self.remittance_information_unstructured is not None:
            check_text(
                self.remittance_information_unstructured, "remittanceInformationUnstructured"
            )
        for action in self.actions or ():
            check_text(action, "actions")
        for location in self.locations or ():
            check_text(location, "locations")


class ApprovalField(_Detail, frozen=True):
    """One labelled value of an ``approval``."""

    label: Text40
    value: Text140

    def __post_init__(self) -> None:
        check_text(self.label, "fields.label")
        check_text(self.value, "fields.value")


class Approval(_Detail, frozen=True, tag_field="type", tag=APPROVAL):
    """A generic thing to approve: a title, a short text and a few labelled fields."""

    title: Text80
    text: Text500 | None = None
    fields: Annotated[tuple[ApprovalField, ...], Meta(max_length=8)] = ()

    def __post_init__(self) -> None:
        check_text(self.title, "title")
        if self.text is not None:
            check_text(self.text, "text")


TypedDetail = PaymentInitiation | Approval
"""The details types the core validates and renders."""

TYPED_DETAILS: Final[frozenset[str]] = frozenset({PAYMENT_INITIATION, APPROVAL})

MAX_ENTRIES: Final = 5
"""At most this many entries of the typed kinds in one request."""


def validate(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of one typed entry (defaults dropped); raises DetailsProblem."""
    try:
        detail = msgspec.convert(entry, TypedDetail)
    except msgspec.ValidationError as exc:
        raise DetailsProblem(str(exc)) from None
    return _builtins(detail)


def _builtins(detail: TypedDetail) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(detail))
    return data


def typed(details: Iterable[Mapping[str, Any]]) -> tuple[TypedDetail, ...]:
    """The typed entries of validated ``details`` as Structs (other types skipped)."""
    return tuple(
        msgspec.convert(entry, TypedDetail)
        for entry in details
        if entry.get("type") in TYPED_DETAILS
    )


def canonical_json(details: Sequence[Mapping[str, Any]]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes ``digest`` hashes."""
    return msgspec.json.encode(list(details), order="sorted")


def digest(details: Sequence[Mapping[str, Any]]) -> str:
    """``sha-256:<base64url>`` of the canonical JSON of ``details``."""
    raw = hashlib.sha256(canonical_json(details)).digest()
    return "sha-256:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --- the approval text --------------------------------------------------------------


def format_amount(amount: str, currency: str) -> str:
    """``1 234.50 EUR``: minor-unit digits, thousands grouped by spaces, the ISO code last."""
    places = minor_units(currency)
    whole, _, fraction = amount.partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    number = " ".join(groups)
    if places:
        number += "." + fraction.ljust(places, "0")
    return f"{number} {currency}"


def format_iban(iban: str) -> str:
    """An IBAN in groups of four, as printed on paper (ISO 13616)."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def escape_markdown(text: str) -> str:
    """Backslash-escape every character simpleMarkdownV1 could read as markup."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def unescape_markdown(markdown: str) -> str:
    """Plain text of ``render``'s markdown: heading marks and escapes removed."""
    lines = []
    for line in markdown.split("\n"):
        for mark in ("### ", "## ", "# "):
            if line.startswith(mark):
                line = line[len(mark) :]
                break
        out, escaped = [], False
        for ch in line:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        lines.append("".join(out))
    return "\n".join(lines)


class Section(msgspec.Struct, frozen=True, kw_only=True):
    """One block of the approval text: a heading, an optional line, labelled rows."""

    title: str
    text: str | None = None
    rows: tuple[tuple[str, str], ...] = ()


class Rendering(msgspec.Struct, frozen=True, kw_only=True):
    """The approval text: ``text`` (plain) and ``markdown`` (simpleMarkdownV1), same lines.

    ``sections`` is the same content as data, for pages that show a table (SMS link).
    """

    text: str
    markdown: str
    sections: tuple[Section, ...] = ()

    def within(self, limit: int, what: str, *, markdown: bool = False, base64: bool = False) -> str:
        """The text (or markdown) if it fits ``limit``; refuse rather than cut it.

        ``base64`` measures the length of the base64 of its UTF-8 (BankID's limits).

        Raises:
            DetailsProblem: it is longer than ``limit``.
        """
        value = self.markdown if markdown else self.text
        size = len(value)
        if base64:
            size = 4 * ((len(value.encode()) + 2) // 3)
        if size > limit:
            raise DetailsProblem(
                f"the text to approve is too long for {what} ({size} > {limit}); "
                "send shorter authorization_details"
            )
        return value


def sections(details: Iterable[Mapping[str, Any]], binding_message: str | None) -> list[Section]:
    """The blocks of the approval text, one per typed detail, then the binding message."""
    out: list[Section] = []
    for detail in typed(details):
        if isinstance(detail, PaymentInitiation):
            amount = detail.instructed_amount
            rows = [
                ("Amount", format_amount(amount.amount, amount.currency)),
                ("To", detail.creditor_name),
                ("Account", format_iban(detail.creditor_account.iban)),
            ]
            if detail.remittance_information_unstructured:
                rows.append(("Reference", detail.remittance_information_unstructured))
            out.append(Section(title="Payment", rows=tuple(rows)))
        else:
            rows = [(item.label, item.value) for item in detail.fields]
            out.append(Section(title=detail.title, text=detail.text, rows=tuple(rows)))
    if binding_message:
        out.append(Section(title="", rows=(("Code", binding_message),)))
    return out


def render(
    details: Iterable[Mapping[str, Any]],
    *,
    client_name: str = "",
    binding_message: str | None = None,
) -> Rendering:
    """The text a person approves: who asks, each typed detail, the binding message.

    ``details`` are validated entries (the gateway's check); other types are skipped.
    """
    blocks = sections(details, binding_message)
    plain: list[str] = []
    marked: list[str] = []

    def add(text: str, mark: str = "") -> None:
        plain.append(text)
        marked.append(mark + escape_markdown(text))

    if client_name:
        add(client_name, "# ")
    for block in blocks:
        if plain:
            add("")
        if block.title:
            add(block.title, "## ")
        if block.text:
            add(block.text)
        for label, value in block.rows:
            add(f"{label}: {value}")
    return Rendering(text="\n".join(plain), markdown="\n".join(marked), sections=tuple(blocks))
