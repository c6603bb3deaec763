"""The Freja connector against the simulator, in-process over SimulatorTransport (no mocks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ciba_gateway_freja.connector import FrejaConnector
from ciba_gateway_freja_sim.settings import FaultControl, persona_upi
from ciba_gateway_freja_sim.simulator import FrejaSimulator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from freja_support import (
    ANNA,
    DORIS,
    KARL,
    KEY_FILE,
    NILS,
    NOBODY,
    NORA,
    OLLE,
    PER,
    RUT,
    TOLVAN,
    start_request,
    unb64json,
)
from litestar import Litestar
from structlog.testing import capture_logs

from ciba_gateway.connector import (
    Approved,
    Denied,
    Expired,
    Failed,
    Identity,
    InvalidHint,
    Pending,
    UpstreamRejected,
    UpstreamUnavailable,
    UserNotFound,
)
from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport

MakeConnector = Callable[..., FrejaConnector]


def last_init(sim: FrejaSimulator) -> dict[str, Any]:
    """The JSON of the newest initAuthentication the simulator received."""
    inits = [r for r in sim.received if r["operation"] == "initAuthentication"]
    return inits[-1]["request"]  # type: ignore[no-any-return]


async def approved(connector: FrejaConnector, clock: FakeClock, value: str, **kw: Any) -> Any:
    """Start for ``value``, let its persona act (up to 6 s) and poll once."""
    started = await connector.start(start_request(value, **kw))
    clock.advance(6)
    return await connector.poll(started.session)


# --- userInfoType and the request ------------------------------------------------------


async def test_ssn_hint_sends_base64_json_user_info(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """An ssn hint becomes userInfoType SSN with userInfo = base64 of {"country","ssn"}."""
    started = await connector.start(start_request(KARL))

    request = last_init(sim)
    assert request["userInfoType"] == "SSN"
    assert unb64json(request["userInfo"]) == {"country": "SE", "ssn": KARL}
    assert request["userInfo"] == "eyJjb3VudHJ5IjoiU0UiLCJzc24iOiIxOTkwMDEwMTEyMzkifQ=="
    assert request["minRegistrationLevel"] == "EXTENDED"
    assert [a["attribute"] for a in request["attributesToReturn"]] == [
        "BASIC_USER_INFO",
        "SSN",
        "DATE_OF_BIRTH",
        "EMAIL_ADDRESS",
        "ALL_PHONE_NUMBERS",
        "REGISTRATION_LEVEL",
        "RELYING_PARTY_USER_ID",
    ]
    assert "userConfirmationMethod" not in request
    assert started.poll_after == 3.0
    assert started.session["authRef"] in {a["authRef"] for a in sim.stats()["auths"]}


async def test_ssn_hint_country_comes_from_hint_or_default(
    make_connector: MakeConnector, sim: FrejaSimulator
) -> None:
    """The hint's country wins; a hint without one uses default_country."""
    connector = make_connector(default_country="NO")
    await connector.start(start_request(NORA, country=None))
    without = unb64json(last_init(sim)["userInfo"])
    await connector.start(start_request(KARL, country="SE"))
    with_country = unb64json(last_init(sim)["userInfo"])

    assert without == {"country": "NO", "ssn": NORA}
    assert with_country == {"country": "SE", "ssn": KARL}


@pytest.mark.parametrize(
    ("kind", "value", "user_info_type"),
    [("email", ANNA, "EMAIL"), ("tel", PER, "PHONE")],
)
async def test_email_and_tel_hints_map_to_their_user_info_type(
    connector: FrejaConnector, sim: FrejaSimulator, kind: str, value: str, user_info_type: str
) -> None:
    """email hints are sent as EMAIL and tel hints as PHONE, the value unchanged."""
    await connector.start(start_request(value, kind=kind))

    request = last_init(sim)
    assert (request["userInfoType"], request["userInfo"]) == (user_info_type, value)


@pytest.mark.parametrize(("kind", "value"), [("customer", "42"), ("ssn", "19900101-1239")])
async def test_unusable_hint_is_invalid(
    connector: FrejaConnector, sim: FrejaSimulator, kind: str, value: str
) -> None:
    """Hint kinds Freja cannot look up, and non-digit national ids, raise InvalidHint unsent."""
    with pytest.raises(InvalidHint):
        await connector.start(start_request(value, kind=kind))

    assert sim.calls["initAuthentication"] == 0


async def test_relying_party_id_and_face_confirmation_are_sent(
    make_connector: MakeConnector, sim: FrejaSimulator
) -> None:
    """relying_party_id travels as &relyingPartyId=, DEFAULT_AND_FACE as userConfirmationMethod."""
    connector = make_connector(
        relying_party_id="rp:subsidiary 1", user_confirmation_method="DEFAULT_AND_FACE"
    )
    await connector.start(start_request(KARL))

    received = [r for r in sim.received if r["operation"] == "initAuthentication"][-1]
    assert received["relyingPartyId"] == "rp:subsidiary 1"
    assert received["request"]["userConfirmationMethod"] == "DEFAULT_AND_FACE"


# --- acr_values -> minRegistrationLevel -------------------------------------------------


@pytest.mark.parametrize(
    ("acr_values", "level"),
    [
        ((), "EXTENDED"),
        (("urn:grn:authn:se:frejaid",), "EXTENDED"),
        (("urn:grn:authn:se:frejaid:plus",), "PLUS"),
        (("urn:grn:authn:se:frejaid:basic",), "EXTENDED"),
        (("urn:example:loa3",), "PLUS"),
        (("urn:grn:authn:se:frejaid:basic", "urn:example:loa3"), "PLUS"),
        (("urn:unknown",), "EXTENDED"),
    ],
)
async def test_acr_values_raise_the_minimum_registration_level(
    make_connector: MakeConnector,
    sim: FrejaSimulator,
    acr_values: tuple[str, ...],
    level: str,
) -> None:
    """The level sent is the highest of the config minimum and the levels of requested acrs."""
    connector = make_connector(acr_levels={"urn:example:loa3": "PLUS"})
    started = await connector.start(start_request(KARL, acr_values=acr_values))

    assert last_init(sim)["minRegistrationLevel"] == level
    assert started.session["level"] == level


async def test_basic_minimum_is_sent_as_configured(
    make_connector: MakeConnector, sim: FrejaSimulator
) -> None:
    """min_registration_level BASIC is sent as BASIC when no acr raises it."""
    connector = make_connector(min_registration_level="BASIC")
    await connector.start(start_request(PER, kind="tel"))

    assert last_init(sim)["minRegistrationLevel"] == "BASIC"


# --- statuses -----------------------------------------------------------------------------


async def test_pending_statuses_then_approved(connector: FrejaConnector, clock: FakeClock) -> None:
    """STARTED and DELIVERED_TO_MOBILE are Pending at the configured pace, then APPROVED."""
    started = await connector.start(start_request(KARL))
    first = await connector.poll(started.session)
    clock.advance(3)
    second = await connector.poll(started.session)
    clock.advance(3)
    third = await connector.poll(started.session)

    assert first == Pending(hint="STARTED", poll_after=3.0)
    assert second == Pending(hint="DELIVERED_TO_MOBILE", poll_after=3.0)
    assert isinstance(third, Approved)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NILS, Denied(reason="The user declined in the Freja eID app (CANCELED).")),
        (
            RUT,
            Denied(reason="Freja eID rejected the authentication for security reasons (REJECTED)."),
        ),
    ],
)
async def test_canceled_and_rejected_are_denied(
    connector: FrejaConnector, clock: FakeClock, value: str, expected: Denied
) -> None:
    """CANCELED (the user declined) and REJECTED (Freja's security refusal) become Denied."""
    started = await connector.start(start_request(value))
    clock.advance(3)

    assert await connector.poll(started.session) == expected


async def test_expired_after_two_minutes(connector: FrejaConnector, clock: FakeClock) -> None:
    """A person who never answers is EXPIRED after the simulator's 120 s: Expired."""
    started = await connector.start(start_request(TOLVAN))
    clock.advance(119)
    before = await connector.poll(started.session)
    clock.advance(1)
    after = await connector.poll(started.session)

    assert isinstance(before, Pending)
    assert after == Expired(
        reason="The user did not answer in the Freja eID app in time (EXPIRED)."
    )


async def test_cancel_makes_rp_canceled_which_is_expired(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """cancel() cancels upstream; the RP_CANCELED result then maps to Expired."""
    started = await connector.start(start_request(TOLVAN))
    with capture_logs() as logs:
        await connector.cancel(started.session)
    result = await connector.poll(started.session)

    assert sim.auths[started.session["authRef"]].status == "RP_CANCELED"
    assert result == Expired(reason="The Freja eID authentication was cancelled (RP_CANCELED).")
    assert [e["event"] for e in logs] == ["freja_auth_cancelled"]


async def test_cancel_is_best_effort(
    connector: FrejaConnector, sim: FrejaSimulator, clock: FakeClock
) -> None:
    """Cancelling an ended or unknown authentication, or an unreachable Freja, never raises."""
    started = await connector.start(start_request(NILS))
    clock.advance(3)
    with capture_logs() as logs:
        await connector.cancel(started.session)
        await connector.cancel({"authRef": "no-such-ref"})
        await connector.cancel({})
        sim.set_fault(_fault("http503"))
        await connector.cancel({"authRef": "another"})

    events = [e["event"] for e in logs]
    assert events == ["freja_cancel_not_pending", "freja_cancel_not_pending", "freja_cancel_failed"]


async def test_person_below_required_level_cannot_approve(
    connector: FrejaConnector, clock: FakeClock, sim: FrejaSimulator
) -> None:
    """An EXTENDED person asked for PLUS cannot approve; the request runs out as Expired."""
    started = await connector.start(
        start_request(OLLE, acr_values=("urn:grn:authn:se:frejaid:plus",))
    )
    refused = sim.decide(started.session["authRef"], approve=True)
    clock.advance(120)

    assert refused is False
    assert isinstance(await connector.poll(started.session), Expired)


# --- error codes ------------------------------------------------------------------------------


async def test_unknown_user_is_user_not_found(connector: FrejaConnector) -> None:
    """Code 1012 (no such user) raises UserNotFound and logs the code, not the number."""
    with capture_logs() as logs:
        with pytest.raises(
            UserNotFound, match=r"no user with this personal identity number \(1012\)"
        ):
            await connector.start(start_request(NOBODY))

    refused = [e for e in logs if e["event"] == "freja_start_refused"]
    assert [(e["status"], e["error_code"]) for e in refused] == [(422, 1012)]
    assert NOBODY not in repr(logs)


async def test_unknown_email_names_the_email(connector: FrejaConnector) -> None:
    """The UserNotFound description names the kind of identifier, never its value."""
    with pytest.raises(UserNotFound) as caught:
        await connector.start(start_request("nobody@example.com", kind="email"))

    assert "email address" in caught.value.description
    assert "nobody@example.com" not in caught.value.description


async def test_disabled_service_is_user_not_found(connector: FrejaConnector) -> None:
    """Code 1005 (the user turned our service off) raises UserNotFound."""
    with pytest.raises(UserNotFound, match=r"1005"):
        await connector.start(start_request(DORIS))


async def test_concurrent_starts_are_rejected_then_2000(
    connector: FrejaConnector, clock: FakeClock
) -> None:
    """A second start cancels both (REJECTED: Denied); a third during the cooldown gets 2000."""
    first = await connector.start(start_request(TOLVAN))
    second = await connector.start(start_request(TOLVAN))
    with pytest.raises(UpstreamRejected, match=r"\(2000\)$"):
        await connector.start(start_request(TOLVAN))
    outcomes = [await connector.poll(s.session) for s in (first, second)]
    clock.advance(30)
    again = await connector.start(start_request(TOLVAN))

    assert all(isinstance(o, Denied) and "REJECTED" in o.reason for o in outcomes)
    assert again.session["authRef"] not in {first.session["authRef"], second.session["authRef"]}


async def test_bad_relying_party_id_is_upstream_rejected(
    make_simulator: Callable[..., Litestar], make_connector: MakeConnector
) -> None:
    """Code 1011 (invalid relyingPartyId), like the other 1000-1011 codes, is UpstreamRejected."""
    app = make_simulator(relying_party_ids=["known-rp"])
    connector = make_connector(SimulatorTransport(app), relying_party_id="other-rp")

    with pytest.raises(UpstreamRejected, match=r"1011: Invalid relyingPartyId"):
        await connector.start(start_request(KARL))


async def test_invalid_reference_while_polling_is_failed(connector: FrejaConnector) -> None:
    """Code 1100 (unknown or expired authRef) during poll is Failed."""
    result = await connector.poll({"authRef": "gone", "userInfoType": "SSN"})

    assert result == Failed(
        reason="Freja eID no longer knows this authentication (1100: invalid reference)"
    )


async def test_session_without_auth_ref_is_failed(connector: FrejaConnector) -> None:
    """A session without authRef fails without calling Freja."""
    assert isinstance(await connector.poll({}), Failed)


# --- transient faults and retries ----------------------------------------------------------


def _fault(kind: str, **kw: Any) -> FaultControl:
    return FaultControl(kind=kind, **kw)  # type: ignore[arg-type]


async def test_get_one_result_is_retried_on_503(
    connector: FrejaConnector, sim: FrejaSimulator, sleeps: FakeSleep
) -> None:
    """Two 503 answers to getOneResult are retried (no real sleep) and the third succeeds."""
    started = await connector.start(start_request(TOLVAN))
    sim.set_fault(_fault("http503", endpoints=("getOneResult",), times=2))
    result = await connector.poll(started.session)

    assert isinstance(result, Pending)
    assert sim.calls["getOneResult"] == 3
    assert len(sleeps.calls) == 2


@pytest.mark.parametrize("kind", ["http500", "http503", "drop"])
async def test_persistent_poll_failure_is_upstream_unavailable(
    connector: FrejaConnector, sim: FrejaSimulator, kind: str
) -> None:
    """5xx answers and dropped connections on every try raise UpstreamUnavailable after 3 tries."""
    started = await connector.start(start_request(TOLVAN))
    sim.set_fault(_fault(kind, endpoints=("getOneResult",)))

    with pytest.raises(UpstreamUnavailable):
        await connector.poll(started.session)
    assert sim.calls["getOneResult"] == 3


class AnswerLost(httpx.AsyncBaseTransport):
    """Delivers the request to the simulator, then times out: Freja acted, we never heard."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.inner.handle_async_request(request)
        raise httpx.ReadTimeout("timed out reading the answer", request=request)


class RefusedOnce(httpx.AsyncBaseTransport):
    """Refuses the first connection (nothing sent), then forwards."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.refused:
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_init_is_not_retried_after_a_timeout(
    make_connector: MakeConnector, app: Litestar, sim: FrejaSimulator
) -> None:
    """A read timeout after initAuthentication was sent is not retried (it would cancel both)."""
    connector = make_connector(AnswerLost(SimulatorTransport(app)))

    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(TOLVAN))
    assert sim.calls["initAuthentication"] == 1
    assert len(sim.auths) == 1


async def test_init_is_not_retried_after_a_dropped_answer(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """A connection dropped after Freja processed initAuthentication is not retried."""
    sim.set_fault(_fault("drop", endpoints=("initAuthentication",)))

    with pytest.raises(UpstreamUnavailable, match="could not be reached"):
        await connector.start(start_request(TOLVAN))
    assert sim.calls["initAuthentication"] == 1
    assert len(sim.auths) == 1


async def test_init_is_not_retried_on_503(connector: FrejaConnector, sim: FrejaSimulator) -> None:
    """A 503 to initAuthentication raises UpstreamUnavailable without a second start."""
    sim.set_fault(_fault("http503"))

    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        await connector.start(start_request(KARL))
    assert sim.calls["initAuthentication"] == 1


async def test_init_is_retried_when_the_connection_was_refused(
    make_connector: MakeConnector, app: Litestar, sim: FrejaSimulator, sleeps: FakeSleep
) -> None:
    """A refused connection sent nothing, so initAuthentication is tried again and succeeds."""
    transport = RefusedOnce(SimulatorTransport(app))
    connector = make_connector(transport)
    started = await connector.start(start_request(KARL))

    assert transport.refused == 1
    assert sim.calls["initAuthentication"] == 1
    assert started.session["authRef"] in sim.auths
    assert len(sleeps.calls) == 1


async def test_internal_error_code_at_start_is_unavailable(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """HTTP 500 with code 0 (internal error) at start raises UpstreamUnavailable."""
    sim.set_fault(_fault("http500", times=1))

    with pytest.raises(UpstreamUnavailable, match=r"0: Internal error"):
        await connector.start(start_request(KARL))


# --- the details JWS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("tamper_payload", "signature"),
        ("wrong_key", "signature"),
        ("alg_none", "alg"),
        ("alg_hs256", "alg"),
        ("other_auth_ref", "auth_ref"),
        ("stale_timestamp", "timestamp"),
    ],
)
async def test_forged_details_are_failed_and_logged(
    connector: FrejaConnector, sim: FrejaSimulator, clock: FakeClock, kind: str, check: str
) -> None:
    """Tampered, wrongly signed, unsigned, HMAC'd, misdirected or stale results are Failed."""
    sim.set_fault(_fault(kind))
    started = await connector.start(start_request(KARL))
    clock.advance(6)
    with capture_logs() as logs:
        result = await connector.poll(started.session)

    assert result == Failed(reason=f"the Freja eID result failed verification ({check})")
    rejected = [e for e in logs if e["event"] == "freja_details_rejected"]
    assert len(rejected) == 1 and rejected[0]["check"] == check
    assert rejected[0]["log_level"] == "warning"
    assert KARL not in repr(logs) and "Karlsson" not in repr(logs)


async def test_identity_comes_from_the_signed_payload(
    connector: FrejaConnector, sim: FrejaSimulator, clock: FakeClock
) -> None:
    """A doctored unsigned top-level requestedAttributes is ignored: names come from the JWS."""
    sim.set_fault(_fault("unsigned_attributes"))
    result = await approved(connector, clock, KARL)

    assert isinstance(result, Approved)
    assert result.identity.claims["name"] == "Karl Karlsson"


async def test_old_approval_is_failed(connector: FrejaConnector, clock: FakeClock) -> None:
    """An approval read later than max_result_age after its signed timestamp is Failed."""
    started = await connector.start(start_request(KARL))
    clock.advance(6 + 301)

    assert await connector.poll(started.session) == Failed(
        reason="the Freja eID result failed verification (timestamp)"
    )


async def test_untrusted_certificate_is_failed(
    make_simulator: Callable[..., Litestar], make_connector: MakeConnector, clock: FakeClock
) -> None:
    """A simulator signing with its own generated certificate is not trusted: Failed."""
    app = make_simulator(signing_key_file=None, signing_cert_file=None)
    connector = make_connector(SimulatorTransport(app))

    result = await approved(connector, clock, NORA, country="NO")

    assert result == Failed(reason="the Freja eID result failed verification (unknown_key)")


@pytest.fixture
def expired_cert(tmp_path: Path) -> str:
    """A certificate for the test signing key that expired in 2020, as a PEM file."""
    key = serialization.load_pem_private_key(Path(KEY_FILE).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired test signer")])
    expired = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "expired.pem"
    cert_file.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    return str(cert_file)


async def test_expired_signing_certificate_is_failed(
    make_simulator: Callable[..., Litestar],
    make_connector: MakeConnector,
    clock: FakeClock,
    expired_cert: str,
) -> None:
    """A trusted certificate outside its validity period verifies nothing: Failed."""
    app = make_simulator(signing_cert_file=expired_cert)
    connector = make_connector(SimulatorTransport(app), trusted_certs=[expired_cert])

    result = await approved(connector, clock, NORA, country="NO")

    assert result == Failed(reason="the Freja eID result failed verification (cert_validity)")


@pytest.mark.parametrize("form", ["string", "object"])
async def test_ssn_user_info_in_payload_as_string_or_object(
    make_simulator: Callable[..., Litestar],
    make_connector: MakeConnector,
    clock: FakeClock,
    form: str,
) -> None:
    """The signed SSN userInfo is accepted as a JSON string and as an object."""
    app = make_simulator(details_user_info=form)
    connector = make_connector(SimulatorTransport(app))

    result = await approved(connector, clock, NORA, country="NO")

    assert isinstance(result, Approved)


# --- identity -------------------------------------------------------------------------------


async def test_identity_of_a_swedish_ssn_user(connector: FrejaConnector, clock: FakeClock) -> None:
    """SSN, names, email, phone and birthdate are normalized; PLUS becomes the plus acr."""
    result = await approved(connector, clock, KARL, acr_values=("urn:grn:authn:se:frejaid",))

    assert result == Approved(
        identity=Identity(
            scheme="se-pnr",
            subject=KARL,
            national_id=KARL,
            country="SE",
            claims={
                "given_name": "Karl",
                "family_name": "Karlsson",
                "name": "Karl Karlsson",
                "birthdate": "1990-01-01",
                "email": "karl@example.com",
                "email_verified": True,
                "phone_number": "+46701234567",
                "phone_number_verified": True,
            },
            acr="urn:grn:authn:se:frejaid:plus",
            amr=("freja",),
            auth_time=int(clock()),
        )
    )


async def test_identity_of_a_norwegian_ssn_user(
    connector: FrejaConnector, clock: FakeClock
) -> None:
    """A Norwegian SSN gets scheme no-fnr and country NO; EXTENDED becomes the extended acr."""
    result = await approved(connector, clock, NORA, country="NO")

    assert isinstance(result, Approved)
    identity = result.identity
    assert (identity.scheme, identity.subject, identity.national_id, identity.country) == (
        "no-fnr",
        NORA,
        NORA,
        "NO",
    )
    assert identity.acr == "urn:grn:authn:se:frejaid:extended"
    assert identity.claims["birthdate"] == "1986-10-15"


async def test_identity_of_an_email_user_with_ssn(
    connector: FrejaConnector, clock: FakeClock
) -> None:
    """An EMAIL user with an SSN attribute is identified by the SSN; email is verified."""
    result = await approved(connector, clock, ANNA, kind="email")

    assert isinstance(result, Approved)
    identity = result.identity
    assert (identity.scheme, identity.subject) == ("se-pnr", "198505051014")
    assert identity.claims["email"] == ANNA
    assert identity.claims["email_verified"] is True


async def test_identity_of_a_basic_phone_user(
    make_connector: MakeConnector, clock: FakeClock
) -> None:
    """A BASIC phone user has no SSN: subject is the relyingPartyUserId, acr basic, no names."""
    connector = make_connector(min_registration_level="BASIC")
    result = await approved(connector, clock, PER, kind="tel")

    assert isinstance(result, Approved)
    identity = result.identity
    assert (identity.scheme, identity.subject) == ("freja-rp-user-id", "rp-user-per")
    assert identity.national_id is None
    assert identity.acr == "urn:grn:authn:se:frejaid:basic"
    assert identity.claims == {
        "email": "per@example.com",
        "email_verified": True,
        "phone_number": PER,
        "phone_number_verified": True,
    }


async def test_unique_personal_identifier_is_the_subject_without_ssn(
    make_connector: MakeConnector, clock: FakeClock, sim: FrejaSimulator
) -> None:
    """Without SSN, UNIQUE_PERSONAL_IDENTIFIER is preferred over relyingPartyUserId."""
    connector = make_connector(
        min_registration_level="BASIC",
        attributes_to_return=["UNIQUE_PERSONAL_IDENTIFIER", "RELYING_PARTY_USER_ID"],
    )
    result = await approved(connector, clock, PER, kind="tel")

    assert isinstance(result, Approved)
    assert result.identity.scheme == "freja-upi"
    assert result.identity.subject == persona_upi(sim.personas[("PHONE", PER)])


async def test_no_stable_identifier_is_failed(
    make_connector: MakeConnector, clock: FakeClock
) -> None:
    """An approval without SSN, UPI or relyingPartyUserId cannot name a subject: Failed."""
    connector = make_connector(
        min_registration_level="BASIC", attributes_to_return=["EMAIL_ADDRESS"]
    )
    result = await approved(connector, clock, PER, kind="tel")

    assert isinstance(result, Failed)
    assert "no stable identifier" in result.reason


async def test_configured_acrs_and_face_amr(
    make_connector: MakeConnector, clock: FakeClock
) -> None:
    """level_acrs override the default URNs; DEFAULT_AND_FACE adds face to amr."""
    connector = make_connector(
        level_acrs={"PLUS": "urn:example:freja:loa3"},
        user_confirmation_method="DEFAULT_AND_FACE",
        amr=["freja", "mfa"],
    )
    result = await approved(connector, clock, KARL)

    assert isinstance(result, Approved)
    assert result.identity.acr == "urn:example:freja:loa3"
    assert result.identity.amr == ("freja", "mfa", "face")
