"""The BankID connector against the simulator, over real HTTP semantics (no mocks of our code)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import msgspec
import pytest
import structlog
from bankid_support import (
    ANNA,
    BERTIL,
    CECILIA,
    DAVID,
    EVA,
    FREJ,
    GUNNAR,
    HELGA,
    KARL,
    NOBODY,
    TOLVAN,
    start_request,
)
from ciba_gateway_bankid.connector import BankIDConnector, Config
from ciba_gateway_bankid_sim.model import Order
from ciba_gateway_bankid_sim.settings import FaultControl
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from litestar import Litestar

from ciba_gateway.connector import (
    Approved,
    Denied,
    Expired,
    Failed,
    InvalidAuthorizationDetails,
    InvalidHint,
    LoginHint,
    Pending,
    Started,
    UpstreamRejected,
    UpstreamUnavailable,
    UserBusy,
)
from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport

MakeConnector = Callable[..., BankIDConnector]


class LoseAnswers(httpx.AsyncBaseTransport):
    """Delivers requests to the simulator, then loses the answer to ``path`` (a read timeout)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner = inner
        self.path = path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith(self.path):
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request)
        return response


class RefuseFirstConnects(httpx.AsyncBaseTransport):
    """Fails the first ``n`` requests with a connect error (nothing reaches the simulator)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner = inner
        self.left = n
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.left > 0:
            self.left -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


class RecordHeaders(httpx.AsyncBaseTransport):
    """Remembers each request's Content-Type before passing it on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.content_types: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.content_types.append(request.headers.get("content-type"))
        return await self.inner.handle_async_request(request)


def only_order(sim: BankIDSimulator) -> Order:
    """The single order the simulator holds."""
    (order,) = sim.orders.values()
    return order


# --- happy path and identity ------------------------------------------------------


async def test_approve_gives_identity(connector: BankIDConnector, clock: FakeClock) -> None:
    """An approving persona yields an se-pnr Identity with names, birthdate, acr, amr, auth_time."""
    started = await connector.start(start_request(KARL))
    assert isinstance(started, Started)
    assert started.poll_after == 2.0
    assert started.session == {"orderRef": started.session["orderRef"], "personalNumber": KARL}

    result = await connector.poll(started.session)

    assert isinstance(result, Approved)
    identity = result.identity
    assert (identity.scheme, identity.subject) == ("se-pnr", KARL)
    assert (identity.national_id, identity.country) == (KARL, "SE")
    assert identity.claims == {
        "name": "Karl Karlsson",
        "given_name": "Karl",
        "family_name": "Karlsson",
        "birthdate": "1990-01-01",
    }
    assert identity.acr == "urn:grn:authn:se:bankid"
    assert identity.amr == ("bankid",)
    assert identity.auth_time == int(clock.now)


async def test_auth_carries_personal_number_ip_and_visible_text(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """Without a call initiator start uses /auth with the client name and binding message."""
    await connector.start(start_request(TOLVAN, binding_message="Code 4711"))

    order = only_order(sim)
    assert sim.calls["auth"] == 1
    assert order.kind == "auth"
    assert order.personal_number == TOLVAN
    assert order.end_user_ip == "198.51.100.4"
    assert order.text == "Demo Bank\n\nCode 4711"


async def test_config_end_user_ip_and_hidden_client_name(
    make_connector: MakeConnector, sim: BankIDSimulator
) -> None:
    """end_user_ip overrides the request's address; show_client_name=False drops the name."""
    connector = make_connector(end_user_ip="2001:db8::1", show_client_name=False)

    await connector.start(start_request(TOLVAN, binding_message="Code 4711"))

    order = only_order(sim)
    assert order.end_user_ip == "2001:db8::1"
    assert order.text == "Code 4711"


async def test_long_visible_text_is_cut_to_bankid_limit(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """A message too long for userVisibleData is shortened (at a character) so BankID accepts it."""
    await connector.start(start_request(TOLVAN, binding_message="å" * 2000))

    text = only_order(sim).text
    assert text is not None and text.startswith("Demo Bank\n\nå")
    assert len(base64.b64encode(text.encode())) <= 1500


async def test_content_type_is_exactly_json(make_connector: MakeConnector, app: Litestar) -> None:
    """Every call is sent with Content-Type exactly application/json (no charset)."""
    recorder = RecordHeaders(SimulatorTransport(app))
    connector = make_connector(transport=recorder)

    started = await connector.start(start_request(KARL))
    await connector.poll(started.session)

    assert recorder.content_types == ["application/json", "application/json"]


# --- terminal outcomes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("personal_number", "kind", "words"),
    [
        (ANNA, Denied, "userCancel"),
        (BERTIL, Denied, "userCancel"),
        (FREJ, Denied, "userDeclinedCall"),
        (EVA, Expired, "expiredTransaction"),
        (CECILIA, Failed, "blocked"),
        (DAVID, Failed, "startFailed"),
        (HELGA, Failed, "updated"),
    ],
)
async def test_failed_hint_codes_map_to_outcomes(
    connector: BankIDConnector, personal_number: str, kind: type, words: str
) -> None:
    """Each failed hintCode becomes Denied, Expired or Failed with a readable reason."""
    started = await connector.start(start_request(personal_number))

    result = await connector.poll(started.session)

    assert type(result) is kind
    assert words in result.reason  # type: ignore[union-attr]


async def test_pending_walks_hints_then_approves(
    connector: BankIDConnector, clock: FakeClock
) -> None:
    """Pending collects report the persona's hints and the interval; the delay then approves."""
    started = await connector.start(start_request(GUNNAR))

    first = await connector.poll(started.session)
    second = await connector.poll(started.session)
    third = await connector.poll(started.session)
    clock.advance(10)
    last = await connector.poll(started.session)

    assert first == Pending(hint="outstandingTransaction", poll_after=2.0)
    assert second == Pending(hint="userSign", poll_after=2.0)
    assert third == Pending(hint="userSign", poll_after=2.0)
    assert isinstance(last, Approved)


async def test_poll_interval_from_config(make_connector: MakeConnector) -> None:
    """poll_interval sets both the first poll delay and each Pending's poll_after."""
    connector = make_connector(poll_interval=3.0)

    started = await connector.start(start_request(TOLVAN))
    pending = await connector.poll(started.session)

    assert started.poll_after == 3.0
    assert isinstance(pending, Pending) and pending.poll_after == 3.0


async def test_ignored_order_expires(connector: BankIDConnector, clock: FakeClock) -> None:
    """An order nobody decides on ends Expired once the order lifetime has passed."""
    started = await connector.start(start_request(TOLVAN))
    clock.advance(179)
    assert isinstance(await connector.poll(started.session), Pending)

    clock.advance(1)

    assert isinstance(await connector.poll(started.session), Expired)


async def test_unknown_person_fails_start_failed_after_timeout(
    connector: BankIDConnector, clock: FakeClock
) -> None:
    """A number without a persona stays outstandingTransaction, then fails startFailed at 30 s."""
    started = await connector.start(start_request(NOBODY))
    clock.advance(29)
    pending = await connector.poll(started.session)

    clock.advance(1)
    result = await connector.poll(started.session)

    assert pending == Pending(hint="outstandingTransaction", poll_after=2.0)
    assert isinstance(result, Failed) and "startFailed" in result.reason


async def test_second_order_is_user_busy_and_cancels_first(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """alreadyInProgress raises UserBusy; the first order then fails as cancelled."""
    first = await connector.start(start_request(TOLVAN))

    with pytest.raises(UserBusy):
        await connector.start(start_request(TOLVAN))
    result = await connector.poll(first.session)

    assert len(sim.orders) == 1
    assert isinstance(result, Failed) and "(cancelled)" in result.reason


# --- phone/auth -------------------------------------------------------------------


async def test_phone_auth_from_authorization_details(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """A phoneAuth authorization_details entry sends /phone/auth with its callInitiator."""
    details = ({"type": "phoneAuth", "callInitiator": "user"},)

    started = await connector.start(start_request(KARL, authorization_details=details))
    result = await connector.poll(started.session)

    order = only_order(sim)
    assert (sim.calls["phone/auth"], sim.calls["auth"]) == (1, 0)
    assert (order.kind, order.call_initiator) == ("phone/auth", "user")
    assert isinstance(result, Approved)


async def test_phone_auth_from_config(make_connector: MakeConnector, sim: BankIDSimulator) -> None:
    """call_initiator in the config makes every start a /phone/auth with that initiator."""
    connector = make_connector(call_initiator="RP", pin_code=True)

    await connector.start(start_request(TOLVAN))

    order = only_order(sim)
    assert (order.kind, order.call_initiator) == ("phone/auth", "RP")


async def test_phone_auth_without_initiator_is_rejected(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """phoneAuth without callInitiator (and none configured) is refused before any call."""
    with pytest.raises(InvalidAuthorizationDetails, match="callInitiator"):
        await connector.start(start_request(KARL, authorization_details=({"type": "phoneAuth"},)))

    assert sum(sim.calls.values()) == 0


# --- hints ------------------------------------------------------------------------


async def test_foreign_ssn_is_invalid_hint(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """An ssn hint from another country is refused with InvalidHint, without calling BankID."""
    with pytest.raises(InvalidHint):
        await connector.start(start_request(KARL, country="NO"))

    assert sum(sim.calls.values()) == 0


async def test_bad_check_digit_is_invalid_hint(connector: BankIDConnector) -> None:
    """A number with a wrong check digit is refused with InvalidHint."""
    request = start_request(KARL)
    bad = msgspec.structs.replace(
        request, login_hint=LoginHint(kind="ssn", value="199001011238", country="SE")
    )

    with pytest.raises(InvalidHint):
        await connector.start(bad)


# --- cancel -----------------------------------------------------------------------


async def test_cancel_removes_order_and_repeats_quietly(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """cancel ends the upstream order; cancelling again is answered 400 and swallowed."""
    started = await connector.start(start_request(TOLVAN))

    await connector.cancel(started.session)
    await connector.cancel(started.session)
    after = await connector.poll(started.session)

    assert sim.calls["cancel"] == 2
    assert sim.orders == {}
    assert isinstance(after, Failed) and "no longer exists" in after.reason


async def test_cancel_swallows_unavailable_upstream(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """cancel retries 503 answers and never raises, even when every attempt fails."""
    started = await connector.start(start_request(TOLVAN))
    sim.set_fault(FaultControl(personal_number="*", fault="http503"))

    await connector.cancel(started.session)

    assert sim.calls["cancel"] == 3
    assert len(sim.orders) == 1


# --- faults and retries -------------------------------------------------------------


async def test_collect_retried_after_503(
    connector: BankIDConnector, http: httpx.AsyncClient, sim: BankIDSimulator, sleeps: FakeSleep
) -> None:
    """A 503 on collect is retried (collect is idempotent) and the next answer is used."""
    started = await connector.start(start_request(KARL))
    control = {"personal_number": KARL, "fault": "http503", "times": 1}
    assert (await http.post("/control/faults", json=control)).status_code == 200

    result = await connector.poll(started.session)

    assert isinstance(result, Approved)
    assert sim.calls["collect"] == 2
    assert len(sleeps.calls) == 1


async def test_collect_failing_every_time_is_unavailable(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """When every collect attempt gets 503 the connector raises UpstreamUnavailable."""
    started = await connector.start(start_request(TOLVAN))
    sim.set_fault(FaultControl(personal_number=TOLVAN, fault="http503"))

    with pytest.raises(UpstreamUnavailable):
        await connector.poll(started.session)

    assert sim.calls["collect"] == 3


async def test_collect_500_is_unavailable_without_retry(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """internalError on collect is not retried in place; the driver polls again later."""
    started = await connector.start(start_request(TOLVAN))
    sim.set_fault(FaultControl(personal_number=TOLVAN, fault="http500"))

    with pytest.raises(UpstreamUnavailable):
        await connector.poll(started.session)

    assert sim.calls["collect"] == 1


async def test_collect_dropped_connection_is_retried(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """A dropped collect answer is retried and the retry's answer is used."""
    started = await connector.start(start_request(KARL))
    sim.set_fault(FaultControl(personal_number=KARL, fault="drop", times=1))

    result = await connector.poll(started.session)

    assert isinstance(result, Approved)
    assert sim.calls["collect"] == 2


async def test_start_not_retried_after_read_timeout(
    make_connector: MakeConnector, app: Litestar, sim: BankIDSimulator
) -> None:
    """A start whose answer timed out is never sent again (that could start a second order)."""
    connector = make_connector(transport=LoseAnswers(SimulatorTransport(app), "/auth"))

    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(TOLVAN))

    assert sim.calls["auth"] == 1
    assert len(sim.orders) == 1  # the order was created; only the answer was lost


async def test_start_not_retried_after_dropped_connection(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """A start whose connection dropped is never sent again."""
    sim.set_fault(FaultControl(personal_number=TOLVAN, fault="drop"))

    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(TOLVAN))

    assert sim.calls["auth"] == 1


async def test_start_500_is_unavailable(connector: BankIDConnector, sim: BankIDSimulator) -> None:
    """internalError on start becomes UpstreamUnavailable and is not retried."""
    sim.set_fault(FaultControl(personal_number=KARL, fault="http500"))

    with pytest.raises(UpstreamUnavailable, match="internalError"):
        await connector.start(start_request(KARL))

    assert sim.calls["auth"] == 1


async def test_start_retried_after_maintenance(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """503 maintenance means no order was created, so start tries again."""
    sim.set_fault(FaultControl(personal_number=KARL, fault="http503", times=1))

    started = await connector.start(start_request(KARL))

    assert sim.calls["auth"] == 2
    assert started.session["orderRef"] in sim.orders


async def test_start_retried_after_connect_error(
    make_connector: MakeConnector, app: Litestar, sim: BankIDSimulator
) -> None:
    """A connect error (nothing was sent) is retried; BankID sees one start."""
    transport = RefuseFirstConnects(SimulatorTransport(app), n=1)
    connector = make_connector(transport=transport)

    started = await connector.start(start_request(KARL))

    assert transport.attempts == 2
    assert sim.calls["auth"] == 1
    assert started.session["orderRef"] in sim.orders


async def test_start_invalid_parameters_is_rejected(connector: BankIDConnector) -> None:
    """invalidParameters on start (here a bad endUserIp) becomes UpstreamRejected."""
    with pytest.raises(UpstreamRejected, match="invalidParameters"):
        await connector.start(start_request(KARL, end_user_ip="not-an-ip"))


async def test_poll_of_unknown_order_fails(connector: BankIDConnector) -> None:
    """Collecting an order BankID does not know (invalidParameters) ends the request Failed."""
    result = await connector.poll({"orderRef": "00000000-0000-0000-0000-000000000000"})

    assert isinstance(result, Failed) and "invalidParameters" in result.reason


async def test_poll_without_order_ref_fails(connector: BankIDConnector) -> None:
    """A session without orderRef fails instead of calling BankID."""
    assert isinstance(await connector.poll({}), Failed)


# --- config and logs --------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"base_url": "ftp://x"},
        {"base_url": "https://x", "end_user_ip": "localhost"},
        {"base_url": "https://x", "call_initiator": "rp"},
        {"base_url": "https://x", "poll_interval": 0.1},
        {"base_url": "https://x", "unknown": 1},
    ],
)
def test_config_rejects_bad_values(config: dict[str, object]) -> None:
    """Config refuses bad URLs, IPs, initiators, intervals and unknown keys."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(config, Config)


def test_connector_declares_hint_kinds_and_details() -> None:
    """The connector serves ssn hints, phoneAuth and the typed (signed) details."""
    assert BankIDConnector.login_hint_kinds == frozenset({"ssn"})
    assert BankIDConnector.authorization_details_types == frozenset(
        {"phoneAuth", "payment_initiation", "approval"}
    )
    assert BankIDConnector.Config is Config


async def test_logs_mask_personal_numbers(connector: BankIDConnector) -> None:
    """Logs carry the orderRef and a masked number, never the full personal number."""
    with structlog.testing.capture_logs() as logs:
        started = await connector.start(start_request(KARL))
        await connector.poll(started.session)

    assert any(entry.get("pnr") == "19900101****" for entry in logs)
    assert any(entry.get("order_ref") == started.session["orderRef"] for entry in logs)
    assert KARL not in repr(logs)
