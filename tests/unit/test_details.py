"""Typed authorization_details: strict validation, the one renderer, the canonical digest."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ciba_gateway.connector import details
from ciba_gateway.connector.details import DetailsProblem

PAYMENT: dict[str, Any] = {
    "type": "payment_initiation",
    "actions": ["initiate", "status", "cancel"],
    "locations": ["https://example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}
APPROVAL: dict[str, Any] = {
    "type": "approval",
    "title": "Release purchase order 4711",
    "text": "The purchasing agent wants to order three laptops.",
    "fields": [{"label": "Supplier", "value": "Acme AB"}, {"label": "Total", "value": "3 laptops"}],
}


def changed(base: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the value at ``path`` replaced (or removed for ...)."""
    out = copy.deepcopy(base)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


def test_rfc_9396_example_payment_is_accepted_unchanged() -> None:
    """RFC 9396's own payment_initiation example validates and keeps every field."""
    assert details.validate(PAYMENT) == PAYMENT


def test_approval_is_accepted_and_defaults_are_dropped() -> None:
    """An approval validates; absent optional parts stay absent in the canonical form."""
    assert details.validate(APPROVAL) == APPROVAL
    assert details.validate({"type": "approval", "title": "Go"}) == {
        "type": "approval",
        "title": "Go",
    }


@pytest.mark.parametrize(
    ("entry", "mentions"),
    [
        (changed(PAYMENT, ("creditorName",), ...), "creditorName"),
        (changed(PAYMENT, ("instructedAmount", "currency"), "EURO"), "currency"),
        (changed(PAYMENT, ("instructedAmount", "currency"), "XAU"), "ISO 4217"),
        (changed(PAYMENT, ("instructedAmount", "currency"), "eur"), "currency"),
        (changed(PAYMENT, ("instructedAmount", "amount"), 123.5), "str"),
        (changed(PAYMENT, ("instructedAmount", "amount"), "12.345"), "minor units (2)"),
        (changed(PAYMENT, ("instructedAmount", "amount"), "0.00"), "greater than zero"),
        (changed(PAYMENT, ("instructedAmount", "amount"), "-5"), "amount"),
        (changed(PAYMENT, ("instructedAmount", "amount"), "0123"), "amount"),
        (changed(PAYMENT, ("instructedAmount", "amount"), "1e3"), "amount"),
        (changed(PAYMENT, ("instructedAmount", "amount"), "1" * 16), "amount"),
        (changed(PAYMENT, ("creditorAccount", "iban"), "DE02100100109307118604"), "check digits"),
        (changed(PAYMENT, ("creditorAccount", "iban"), "DE02 1001 0010"), "iban"),
        (changed(PAYMENT, ("creditorName",), "M" * 71), "length <= 70"),
        (changed(PAYMENT, ("remittanceInformationUnstructured",), "r" * 141), "length <= 140"),
        (changed(PAYMENT, ("creditorName",), ""), "length >= 1"),
        (changed(PAYMENT, ("debtorName",), "Someone"), "unknown field"),
        (changed(PAYMENT, ("instructedAmount", "fx"), "1"), "unknown field"),
        (changed(PAYMENT, ("actions",), ["a"] * 9), "length <= 8"),
        (changed(APPROVAL, ("title",), "T" * 81), "length <= 80"),
        (changed(APPROVAL, ("text",), "t" * 501), "length <= 500"),
        (changed(APPROVAL, ("fields",), [{"label": "l", "value": "v"}] * 9), "length <= 8"),
        (changed(APPROVAL, ("fields",), [{"label": "L" * 41, "value": "v"}]), "length <= 40"),
        (changed(APPROVAL, ("fields",), [{"label": "l"}]), "value"),
        (changed(APPROVAL, ("title",), ...), "title"),
    ],
)
def test_invalid_entries_are_refused_with_the_reason(entry: dict[str, Any], mentions: str) -> None:
    """Every limit of both types refuses, naming the field or the rule."""
    with pytest.raises(DetailsProblem, match=None) as info:
        details.validate(entry)
    assert mentions in str(info.value)


@pytest.mark.parametrize(
    "hostile",
    [
        "Merchant\u202eA",  # right-to-left override: "Merchant" + reversed text
        "Merchant\u2066A\u2069",  # bidi isolate
        "Merchant\u200bA",  # zero-width space
        "Merchant\u200dA",  # zero-width joiner
        "Merchant\x00A",
        "Merchant\nA",
        "Merchant\tA",
        "Merchant\x1b[31mA",
        "Merchant\u00a0A",  # no-break space
        "Merchant\u2028A",  # line separator
        "Merchant\ue000A",  # private use
        " Merchant A",
        "Merchant A ",
        "Cafe\u0301",  # not NFC (e + combining acute)
    ],
)
@pytest.mark.parametrize(
    "path", [("creditorName",), ("remittanceInformationUnstructured",), ("title",)]
)
def test_control_format_and_bidi_characters_are_refused(
    hostile: str, path: tuple[str, ...]
) -> None:
    """Text with characters that hide or reorder what a person reads is refused, not cleaned."""
    base = APPROVAL if path == ("title",) else PAYMENT
    with pytest.raises(DetailsProblem):
        details.validate(changed(base, path, hostile))


def test_unicode_letters_and_nfc_accents_are_fine() -> None:
    """Ordinary non-ASCII names (NFC) are accepted as they are."""
    entry = changed(PAYMENT, ("creditorName",), "Café Åkerström Ølgaard 東京")
    assert details.validate(entry)["creditorName"] == "Café Åkerström Ølgaard 東京"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("123.5", "EUR", "123.50 EUR"),
        ("1234567.05", "SEK", "1 234 567.05 SEK"),
        ("1000", "JPY", "1 000 JPY"),
        ("12.345", "KWD", "12.345 KWD"),
        ("7", "BHD", "7.000 BHD"),
        ("0.5", "USD", "0.50 USD"),
        ("999", "ISK", "999 ISK"),
        ("1.2345", "CLF", "1.2345 CLF"),
    ],
)
def test_amounts_use_the_currency_minor_units(amount: str, currency: str, shown: str) -> None:
    """Amounts show exactly the ISO 4217 minor-unit digits, grouped by spaces, code last."""
    assert details.format_amount(amount, currency) == shown


def test_amount_with_decimals_for_a_currency_without_is_refused() -> None:
    """10.5 JPY has no meaning (JPY has no minor unit): refused, not rounded."""
    entry = changed(PAYMENT, ("instructedAmount",), {"currency": "JPY", "amount": "10.5"})
    with pytest.raises(DetailsProblem, match="JPY has minor units"):
        details.validate(entry)


def render_payment(name: str, reference: str = "Ref 1") -> details.Rendering:
    entry = changed(
        changed(PAYMENT, ("creditorName",), name), ("remittanceInformationUnstructured",), reference
    )
    return details.render(
        [details.validate(entry)], client_name="Demo *Bank*", binding_message="A1B2"
    )


def test_render_plain_text_of_a_payment() -> None:
    """The plain text: client, the payment's rows, the binding message."""
    rendering = details.render(
        [details.validate(PAYMENT)], client_name="Demo Bank", binding_message="A1B2"
    )
    assert rendering.text == (
        "Demo Bank\n"
        "\n"
        "Payment\n"
        "Amount: 123.50 EUR\n"
        "To: Merchant A\n"
        "Account: DE02 1001 0010 9307 1186 03\n"
        "Reference: Ref Number Merchant\n"
        "\n"
        "Code: A1B2"
    )
    assert rendering.markdown.splitlines()[:3] == ["# Demo Bank", "", "## Payment"]


def test_render_approval_with_fields() -> None:
    """An approval renders its title as a heading, its text, then label: value lines."""
    rendering = details.render([details.validate(APPROVAL)])
    assert rendering.text.splitlines() == [
        "Release purchase order 4711",
        "The purchasing agent wants to order three laptops.",
        "Supplier: Acme AB",
        "Total: 3 laptops",
    ]
    assert rendering.sections[0].rows == (("Supplier", "Acme AB"), ("Total", "3 laptops"))


@pytest.mark.parametrize(
    "name",
    [
        "# Pay me",
        "*bold* +it+",
        "a|b|c",
        "---",
        "\\*x\\*",
        "[link](http://evil)",
        "<b>x</b>",
        "= x",
    ],
)
def test_markdown_injection_is_escaped(name: str) -> None:
    """Client text cannot add headings, emphasis, tables or rules: only ours start a line."""
    rendering = render_payment(name, reference=name)
    lines = rendering.markdown.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == ["# Demo \\*Bank\\*", "## Payment"]
    assert f"To: {name}" in rendering.text.splitlines()
    for line in lines:
        for i, ch in enumerate(line):
            if ch in "*+|#-=[]<>" and not (line.startswith("#") and i < line.find(" ")):
                assert line[i - 1] == "\\", (line, i)
    assert details.unescape_markdown(rendering.markdown) == rendering.text


def test_non_typed_entries_are_not_shown() -> None:
    """Connector-specific types (phoneAuth) steer the connector and add no text."""
    rendering = details.render([{"type": "phoneAuth", "callInitiator": "RP"}], client_name="X")
    assert rendering.text == "X"


def test_long_text_is_refused_not_cut() -> None:
    """Past an upstream's limit the rendering refuses; it never returns a shortened text."""
    rendering = render_payment("N" * 70, reference="R" * 140)
    assert rendering.within(len(rendering.text), "Freja") == rendering.text
    with pytest.raises(DetailsProblem, match="too long for Freja"):
        rendering.within(len(rendering.text) - 1, "Freja")
    size = len(rendering.markdown.encode())
    b64 = 4 * ((size + 2) // 3)
    assert rendering.within(b64, "BankID", markdown=True, base64=True) == rendering.markdown
    with pytest.raises(DetailsProblem, match="BankID"):
        rendering.within(b64 - 1, "BankID", markdown=True, base64=True)


def test_digest_is_canonical_and_changes_with_one_byte() -> None:
    """Key order does not matter; one changed byte anywhere changes the digest."""
    reordered = dict(reversed(list(PAYMENT.items())))
    assert details.digest([PAYMENT]) == details.digest([reordered])
    assert details.digest([PAYMENT]).startswith("sha-256:")
    one_cent = changed(PAYMENT, ("instructedAmount", "amount"), "123.51")
    assert details.digest([one_cent]) != details.digest([PAYMENT])
    other_iban = changed(PAYMENT, ("creditorAccount", "iban"), "DE02100100109307118613")
    assert details.digest([other_iban]) != details.digest([PAYMENT])
    assert details.canonical_json([{"b": 1, "a": "ä"}]) == '[{"a":"ä","b":1}]'.encode()
