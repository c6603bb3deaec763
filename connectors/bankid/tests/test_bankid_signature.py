"""The XML-DSig signature of a sign order and the chains of its signer and OCSP responder.

The simulator signs for real (throwaway root -> issuing CA -> signer, a delegated
OCSP responder); the connector trusts the simulator's ``root.pem``. Each forgery
(``bankid_forgeries``) replaces the simulator's genuine completion before the
connector collects it: the outcome is Failed with one security event, never an
exception. ``test_bankid_gateway.py`` follows the same forgeries through the gateway.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from bankid_forgeries import FORGERIES, TYPES, signature_xml, with_signature
from bankid_support import KARL, TOLVAN, start_request
from ciba_gateway_bankid.connector import BankIDConnector
from ciba_gateway_bankid.signature import verify
from ciba_gateway_bankid.trust import Roots, Untrusted
from ciba_gateway_bankid.wire import CompletionData
from ciba_gateway_bankid_sim.pki import SimulatedPki
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner, methods

from ciba_gateway.connector import Approved, Failed, InvalidAuthorizationDetails
from ciba_gateway.connector.details import validate
from ciba_gateway.connector.testing import FakeClock

PAYMENT = validate(
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "12.00"},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": "DE02100100109307118603"},
    }
)


async def _signed(
    connector: BankIDConnector, sim: BankIDSimulator
) -> tuple[dict[str, Any], CompletionData]:
    """A sign order Tolvan approved on the phone: its session and the genuine completion."""
    started = await connector.start(start_request(TOLVAN, authorization_details=(PAYMENT,)))
    assert sim.decide(TOLVAN, started.session["orderRef"], approve=True)
    completion = sim.completion(started.session["orderRef"])
    assert completion is not None
    return started.session, completion


def _at(clock: FakeClock) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock(), dt.UTC)


async def test_the_simulators_signature_verifies(
    connector: BankIDConnector, sim: BankIDSimulator, root_file: Path, clock: FakeClock
) -> None:
    """Control: the genuine completion passes every check, signed by the person's own key."""
    session, completion = await _signed(connector, sim)

    evidence = verify(completion, session["sign"], Roots.load(str(root_file)), _at(clock))

    assert not isinstance(evidence, str), evidence
    assert "signature value" in evidence.checks and "ocsp responder" in evidence.checks
    assert b"<ds:SignatureValue>" in signature_xml(completion)


@pytest.mark.parametrize("name", sorted(FORGERIES))
async def test_a_forgery_fails_the_request_with_a_security_event(
    connector: BankIDConnector, sim: BankIDSimulator, name: str
) -> None:
    """Changed content or SignatureValue, foreign root, uncovered data, foreign responder."""
    forge, problem = FORGERIES[name]
    started = await connector.start(start_request(TOLVAN, authorization_details=(PAYMENT,)))
    order = sim.orders[started.session["orderRef"]]
    assert sim.decide(TOLVAN, order.order_ref, approve=True)
    genuine = sim.completion(order.order_ref)
    assert genuine is not None
    order.completion = forge(sim, genuine)

    with structlog.testing.capture_logs() as logs:
        result = await connector.poll(started.session)

    assert isinstance(result, Failed), result
    assert problem in result.reason
    rejected = [e for e in logs if e["event"] == "bankid_signature_rejected"]
    assert len(rejected) == 1
    assert rejected[0]["security_event"] is True
    assert rejected[0]["log_level"] == "warning"
    assert TOLVAN not in repr(logs) and "Tolvansson" not in repr(logs)


async def test_a_reference_to_the_object_holding_the_data_also_covers_it(
    connector: BankIDConnector, sim: BankIDSimulator, root_file: Path, clock: FakeClock
) -> None:
    """signxml's enveloping layout (``#object`` around bankIdSignedData) is as good as BankID's."""
    session, completion = await _signed(connector, sim)
    data = etree.fromstring(signature_xml(completion)).find(f".//{{{TYPES}}}bankIdSignedData")
    signer = sim.pki.signer(TOLVAN, "Tolvan Tolvansson")
    enveloping = XMLSigner(
        method=methods.enveloping,
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
    ).sign(data, key=signer.key, cert=[signer.cert, sim.pki.issuing.cert])
    xml = etree.tostring(enveloping, encoding="UTF-8")

    result = verify(
        with_signature(completion, xml), session["sign"], Roots.load(str(root_file)), _at(clock)
    )

    assert not isinstance(result, str), result


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        (b"<a><b></a>", "not XML"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "not a plain XML-DSig document"),
        (b"<Signature/>", "not a plain XML-DSig document"),
        (b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>', "no readable signer"),
        (
            b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><KeyInfo><X509Data>'
            b"<X509Certificate>AAAA</X509Certificate></X509Data></KeyInfo></Signature>",
            "no readable signer",
        ),
    ],
)
async def test_documents_that_are_no_signature_are_refused(
    connector: BankIDConnector,
    sim: BankIDSimulator,
    root_file: Path,
    clock: FakeClock,
    xml: bytes,
    problem: str,
) -> None:
    """Broken XML, DTDs, another root element, a Signature without certificates."""
    session, completion = await _signed(connector, sim)

    result = verify(
        with_signature(completion, xml), session["sign"], Roots.load(str(root_file)), _at(clock)
    )

    assert isinstance(result, str) and problem in result


async def test_a_signer_certificate_outside_its_validity_is_refused(
    connector: BankIDConnector, sim: BankIDSimulator, root_file: Path
) -> None:
    """Chains are checked at the connector's clock: no simulator certificate is valid in 2019."""
    session, completion = await _signed(connector, sim)
    before = dt.datetime(2019, 6, 1, tzinfo=dt.UTC)

    result = verify(completion, session["sign"], Roots.load(str(root_file)), before)

    assert isinstance(result, str) and "signer certificate has no valid path" in result


async def test_without_signature_ca_file_sign_orders_are_refused_at_start(
    make_connector: Callable[..., BankIDConnector], sim: BankIDSimulator
) -> None:
    """No trust root: typed details are refused before BankID is called; plain auth works."""
    connector = make_connector(signature_ca_file=None)

    with pytest.raises(InvalidAuthorizationDetails, match="no signature_ca_file"):
        await connector.start(start_request(TOLVAN, authorization_details=(PAYMENT,)))
    assert sim.calls["sign"] == 0 and sim.calls["phone/sign"] == 0

    started = await connector.start(start_request(KARL))
    assert isinstance(await connector.poll(started.session), Approved)


async def test_a_sign_order_collected_without_trust_root_fails(
    connector: BankIDConnector,
    make_connector: Callable[..., BankIDConnector],
    sim: BankIDSimulator,
) -> None:
    """Started with a root, collected after a reload that dropped it: Failed, not Approved."""
    session, _ = await _signed(connector, sim)

    result = await make_connector(signature_ca_file=None).poll(session)

    assert isinstance(result, Failed) and "no signature_ca_file" in result.reason


@pytest.mark.parametrize(
    ("content", "problem"), [(None, "cannot read"), (b"no pem here", "no PEM certificate")]
)
def test_an_unusable_signature_ca_file_stops_the_connector(
    make_connector: Callable[..., BankIDConnector],
    tmp_path: Path,
    content: bytes | None,
    problem: str,
) -> None:
    """A missing or empty root file is a start-up error naming the file, not a later refusal."""
    path = tmp_path / "roots.pem"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ValueError, match=problem) as raised:
        make_connector(signature_ca_file=str(path))
    assert str(path) in str(raised.value)


def test_roots_hold_every_certificate_of_the_file(tmp_path: Path) -> None:
    """signature_ca_file may hold several roots (e.g. BankID's test and production roots)."""
    first, second = SimulatedPki(), SimulatedPki()
    path = tmp_path / "roots.pem"
    path.write_bytes(first.root_pem() + second.root_pem())
    roots = Roots.load(str(path))
    now = dt.datetime.now(dt.UTC)

    for pki in (first, second):
        signer = pki.signer(TOLVAN, "Tolvan Tolvansson")
        assert roots.signer(signer.cert, [pki.issuing.cert], now)[-1] == pki.root.cert


@pytest.mark.parametrize("role", ["ca_as_signer", "signer_as_responder", "no_intermediate"])
def test_the_chain_profile(role: str) -> None:
    """A CA cannot sign as a person, a person cannot answer OCSP, an intermediate is needed."""
    pki = SimulatedPki()
    roots = Roots([pki.root.cert])
    signer = pki.signer(TOLVAN, "Tolvan Tolvansson").cert
    now = dt.datetime.now(dt.UTC)
    check: Callable[[], object] = {
        "ca_as_signer": lambda: roots.signer(pki.issuing.cert, [], now),
        "signer_as_responder": lambda: roots.responder(signer, [pki.issuing.cert], now),
        "no_intermediate": lambda: roots.signer(signer, [], now),
    }[role]

    with pytest.raises(Untrusted):
        check()
    assert roots.responder(pki.responder.cert, [pki.issuing.cert], now)  # control
    assert roots.signer(signer, [pki.issuing.cert], now)  # control
