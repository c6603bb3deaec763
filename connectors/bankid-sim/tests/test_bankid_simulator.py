"""The BankID simulator: wire rules, order life, phone page, controls, dropped connections."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from bankid_support import KARL, NOBODY, PERSONAS, TOLVAN, pnr
from ciba_gateway_bankid_sim.app import create_simulator
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from litestar import Litestar

from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport

RP = "/rp/v6.0"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def start_phone(
    http: httpx.AsyncClient, personal_number: str = TOLVAN, text: str = "Hello"
) -> str:
    """Start a phone/auth order and return its orderRef."""
    body = {"personalNumber": personal_number, "callInitiator": "RP", "userVisibleData": b64(text)}
    response = await http.post(f"{RP}/phone/auth", json=body)
    assert response.status_code == 200, response.text
    return response.json()["orderRef"]  # type: ignore[no-any-return]


async def collect(http: httpx.AsyncClient, order_ref: str) -> httpx.Response:
    return await http.post(f"{RP}/collect", json={"orderRef": order_ref})


# --- wire rules -------------------------------------------------------------------


async def test_get_is_method_not_allowed(http: httpx.AsyncClient) -> None:
    """Any method but POST gets 405 methodNotAllowed as a BankID error body."""
    response = await http.get(f"{RP}/auth")

    assert response.status_code == 405
    assert response.json()["errorCode"] == "methodNotAllowed"
    assert response.headers["allow"] == "POST"


async def test_charset_in_content_type_is_unsupported(http: httpx.AsyncClient) -> None:
    """A charset parameter on Content-Type gets 415 unsupportedMediaType, like BankID."""
    response = await http.post(
        f"{RP}/auth",
        content=b'{"endUserIp": "192.0.2.1"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 415
    assert response.json() == {
        "errorCode": "unsupportedMediaType",
        "details": "Content-Type must be application/json.",
    }


async def test_unknown_path_is_not_found(http: httpx.AsyncClient) -> None:
    """An unknown RP API path gets 404 notFound."""
    response = await http.post(f"{RP}/authenticate", json={})

    assert (response.status_code, response.json()["errorCode"]) == (404, "notFound")


@pytest.mark.parametrize(
    ("path", "body", "mentions"),
    [
        ("auth", {}, "endUserIp"),
        ("auth", {"endUserIp": "nope"}, "endUserIp"),
        ("auth", {"endUserIp": "192.0.2.1", "userVisibleData": "not base64!"}, "userVisibleData"),
        ("auth", {"endUserIp": "192.0.2.1", "userVisibleData": "QQ==" * 400}, "userVisibleData"),
        (
            "auth",
            {"endUserIp": "192.0.2.1", "requirement": {"personalNumber": "199001011238"}},
            "personalNumber",
        ),
        ("phone/auth", {"personalNumber": KARL, "callInitiator": "rp"}, "callInitiator"),
        ("phone/auth", {"callInitiator": "RP"}, "personalNumber"),
        ("sign", {"endUserIp": "192.0.2.1"}, "userVisibleData"),
        ("collect", {}, "orderRef"),
    ],
)
async def test_bad_fields_are_invalid_parameters(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], mentions: str
) -> None:
    """Missing or malformed fields get 400 invalidParameters naming the field."""
    response = await http.post(f"{RP}/{path}", json=body)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "invalidParameters"
    assert mentions in response.json()["details"]


async def test_non_json_body_is_invalid_parameters(http: httpx.AsyncClient) -> None:
    """A body that is not JSON gets 400 invalidParameters."""
    response = await http.post(
        f"{RP}/collect", content=b"orderRef=1", headers={"content-type": "application/json"}
    )

    assert (response.status_code, response.json()["errorCode"]) == (400, "invalidParameters")


async def test_unknown_order_ref_is_invalid_parameters(http: httpx.AsyncClient) -> None:
    """collect and cancel of an unknown orderRef get 400 invalidParameters."""
    ref = str(uuid.uuid4())

    for path in ("collect", "cancel"):
        response = await http.post(f"{RP}/{path}", json={"orderRef": ref})
        assert (response.status_code, response.json()["errorCode"]) == (400, "invalidParameters")


async def test_auth_answer_has_tokens_phone_answer_only_order_ref(
    http: httpx.AsyncClient,
) -> None:
    """/auth answers orderRef plus the three start tokens; /phone/auth only orderRef."""
    auth = await http.post(
        f"{RP}/auth",
        json={"endUserIp": "192.0.2.1", "requirement": {"personalNumber": TOLVAN}},
    )
    phone = await http.post(
        f"{RP}/phone/auth", json={"personalNumber": KARL, "callInitiator": "user"}
    )

    assert set(auth.json()) == {"orderRef", "autoStartToken", "qrStartToken", "qrStartSecret"}
    assert set(phone.json()) == {"orderRef"}
    assert all(uuid.UUID(value) for value in auth.json().values())


async def test_sign_and_phone_sign_start_orders(
    http: httpx.AsyncClient, sim: BankIDSimulator
) -> None:
    """/sign and /phone/sign are accepted with userVisibleData and create sign orders."""
    sign = await http.post(
        f"{RP}/sign", json={"endUserIp": "192.0.2.1", "userVisibleData": b64("x")}
    )
    phone = await http.post(
        f"{RP}/phone/sign",
        json={"personalNumber": TOLVAN, "callInitiator": "RP", "userVisibleData": b64("y")},
    )

    assert (sign.status_code, phone.status_code) == (200, 200)
    assert sorted(o.kind for o in sim.orders.values()) == ["phone/sign", "sign"]


# --- order life -------------------------------------------------------------------


async def test_second_order_already_in_progress_cancels_first(http: httpx.AsyncClient) -> None:
    """A second order for a busy person gets alreadyInProgress and the first fails cancelled."""
    first = await start_phone(http)

    second = await http.post(
        f"{RP}/phone/auth", json={"personalNumber": TOLVAN, "callInitiator": "user"}
    )
    state = await collect(http, first)

    assert second.status_code == 400
    assert second.json()["errorCode"] == "alreadyInProgress"
    assert state.json() == {"orderRef": first, "status": "failed", "hintCode": "cancelled"}


async def test_phone_orders_walk_default_hints(http: httpx.AsyncClient) -> None:
    """Unscripted phone orders show outstandingTransaction, userCallConfirm, then userSign."""
    ref = await start_phone(http)

    hints = [(await collect(http, ref)).json()["hintCode"] for _ in range(4)]

    assert hints == ["outstandingTransaction", "userCallConfirm", "userSign", "userSign"]


async def test_complete_order_collectable_for_retention_only(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A complete order can be collected for 180 s; afterwards collect is invalidParameters."""
    ref = await start_phone(http, KARL)
    clock.advance(179)
    still = await collect(http, ref)

    clock.advance(1)
    gone = await collect(http, ref)

    assert still.json()["status"] == "complete"
    assert (gone.status_code, gone.json()["errorCode"]) == (400, "invalidParameters")


async def test_failed_order_collectable_for_five_minutes(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A failed order (startFailed at 30 s) can be collected until 300 s after it failed."""
    ref = await start_phone(http, NOBODY)
    clock.advance(30 + 299)
    still = await collect(http, ref)

    clock.advance(1)
    gone = await collect(http, ref)

    assert still.json()["hintCode"] == "startFailed"
    assert gone.status_code == 400


async def test_completion_data_shape(http: httpx.AsyncClient) -> None:
    """completionData carries user, device, bankIdIssueDate, an XML-DSig-like signature and OCSP."""
    ref = await start_phone(http, KARL, text="Log in to Demo Bank")

    data = (await collect(http, ref)).json()["completionData"]

    assert data["user"] == {
        "personalNumber": KARL,
        "name": "Karl Karlsson",
        "givenName": "Karl",
        "surname": "Karlsson",
    }
    assert set(data["device"]) == {"ipAddress", "uhi"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["bankIdIssueDate"])
    signature = base64.b64decode(data["signature"]).decode()
    assert "http://www.w3.org/2000/09/xmldsig#" in signature
    assert f"<usrVisibleData>{b64('Log in to Demo Bank')}</usrVisibleData>" in signature
    assert base64.b64decode(data["ocspResponse"])


async def test_completion_data_signed_once_at_first_collect(
    http: httpx.AsyncClient, sim: BankIDSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order completed but never collected is never signed; collects agree on one signature."""
    signed: list[str] = []
    original = sim.pki.signature

    def counting(*args: Any, **kwargs: Any) -> bytes:
        signed.append(args[1] if len(args) > 1 else kwargs["visible"])
        return original(*args, **kwargs)

    monkeypatch.setattr(sim.pki, "signature", counting)
    first = await start_phone(http, KARL, text="first")
    await start_phone(http, KARL, text="second")  # completes the first one in passing
    before_collect = list(signed)

    one = (await collect(http, first)).json()
    two = (await collect(http, first)).json()

    assert before_collect == []
    assert signed == [b64("first")]
    assert one["status"] == "complete"
    assert one["completionData"] == two["completionData"]


async def test_cancel_then_cancel_again(http: httpx.AsyncClient) -> None:
    """cancel answers {} once; a second cancel is invalidParameters."""
    ref = await start_phone(http)

    first = await http.post(f"{RP}/cancel", json={"orderRef": ref})
    second = await http.post(f"{RP}/cancel", json={"orderRef": ref})

    assert (first.status_code, first.json()) == (200, {})
    assert (second.status_code, second.json()["errorCode"]) == (400, "invalidParameters")


# --- phone page -------------------------------------------------------------------


async def test_phone_index_lists_personas_and_pending_numbers(http: httpx.AsyncClient) -> None:
    """The index lists every persona and unknown numbers that have pending orders."""
    await start_phone(http, NOBODY)

    page = await http.get("/phone")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'href="phone/{TOLVAN}"' in page.text
    assert f'href="phone/{NOBODY}"' in page.text
    assert "Karl Karlsson" in page.text


async def test_phone_page_lists_order_and_escapes_visible_data(http: httpx.AsyncClient) -> None:
    """A pending order shows its decoded userVisibleData HTML-escaped, with both forms."""
    ref = await start_phone(http, text="<script>alert(1)</script> & more")

    page = await http.get(f"/phone/{TOLVAN}")

    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page.text
    assert f'action="{TOLVAN}/{ref}/approve"' in page.text
    assert f'action="{TOLVAN}/{ref}/deny"' in page.text
    assert 'name="viewport"' in page.text


async def test_approve_form_completes_order(http: httpx.AsyncClient) -> None:
    """Posting the Approve form completes the order (303 back) with the persona's names."""
    ref = await start_phone(http)
    page = await http.get(f"/phone/{TOLVAN}")
    action = re.search(r'action="([^"]+/approve)"', page.text)
    assert action is not None

    decided = await http.post(str(page.url.join(action.group(1))))
    back = await http.get(decided.url.join(decided.headers["location"]))
    state = (await collect(http, ref)).json()

    assert decided.status_code == 303
    assert back.url.path == f"/phone/{TOLVAN}"
    assert ref not in back.text
    assert state["status"] == "complete"
    assert state["completionData"]["user"]["name"] == "Tolvan Tolvansson"


async def test_deny_form_fails_order_user_cancel(http: httpx.AsyncClient) -> None:
    """Posting Deny makes the order failed/userCancel."""
    ref = await start_phone(http)

    decided = await http.post(f"/phone/{TOLVAN}/{ref}/deny")

    assert decided.status_code == 303
    assert (await collect(http, ref)).json()["hintCode"] == "userCancel"


async def test_page_approval_of_unknown_person_uses_placeholder(http: httpx.AsyncClient) -> None:
    """A number without persona can be approved on the page; the names are 'Test Person'."""
    ref = await start_phone(http, NOBODY)

    await http.post(f"/phone/{NOBODY}/{ref}/approve")

    user = (await collect(http, ref)).json()["completionData"]["user"]
    assert (user["name"], user["givenName"], user["surname"]) == ("Test Person", "Test", "Person")


async def test_deciding_twice_is_conflict(http: httpx.AsyncClient) -> None:
    """Deciding an order that is no longer pending answers 409 and changes nothing."""
    ref = await start_phone(http)
    await http.post(f"/phone/{TOLVAN}/{ref}/deny")

    again = await http.post(f"/phone/{TOLVAN}/{ref}/approve")

    assert again.status_code == 409
    assert (await collect(http, ref)).json()["status"] == "failed"


async def test_phone_page_for_bad_number_is_404(http: httpx.AsyncClient) -> None:
    """A path that is not a 12-digit number gets a 404 page."""
    assert (await http.get("/phone/<b>")).status_code == 404


# --- controls and settings --------------------------------------------------------


async def test_latency_uses_injected_sleep(http: httpx.AsyncClient, sleeps: FakeSleep) -> None:
    """Latency injected for everyone delays RP API answers through the injected sleep."""
    await http.post("/control/faults", json={"personal_number": "*", "latency": 1.5})

    await start_phone(http)

    assert sleeps.calls == [1.5]


async def test_persona_fault_from_settings(make_simulator: Callable[..., Litestar]) -> None:
    """A persona's configured fault applies to its calls until it is removed via control."""
    app = make_simulator(personas=[{"personal_number": KARL, "fault": "http500"}])
    async with httpx.AsyncClient(transport=SimulatorTransport(app), base_url="http://s") as http:
        body = {"personalNumber": KARL, "callInitiator": "RP"}
        broken = await http.post(f"{RP}/phone/auth", json=body)
        await http.post("/control/faults", json={"personal_number": KARL, "fault": "none"})
        fixed = await http.post(f"{RP}/phone/auth", json=body)

    assert (broken.status_code, broken.json()["errorCode"]) == (500, "internalError")
    assert fixed.status_code == 200


async def test_reset_forgets_orders_and_counters(
    http: httpx.AsyncClient, sim: BankIDSimulator
) -> None:
    """POST /control/reset empties orders, call counters and runtime faults."""
    await start_phone(http)
    await http.post("/control/faults", json={"personal_number": "*", "fault": "http503"})

    reset = await http.post("/control/reset")
    stats = (await http.get("/control/stats")).json()

    assert reset.status_code == 204
    assert stats == {"calls": {}, "orders": []}
    assert sim.faults == {}


async def test_bad_fault_control_is_400(http: httpx.AsyncClient) -> None:
    """The control endpoint validates its body."""
    response = await http.post("/control/faults", json={"personal_number": "x", "fault": "boom"})

    assert response.status_code == 400


@pytest.mark.parametrize(
    "settings",
    [
        {"personas": [{"personal_number": KARL}, {"personal_number": KARL}]},
        {"personas": [{"personal_number": KARL, "outcome": "maybe"}]},
        {"order_lifetime": 0},
        {"surprise": True},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    """Duplicate personas, unknown outcomes, bad durations and unknown keys are refused."""
    with pytest.raises(msgspec.ValidationError):
        create_simulator(settings)


def test_default_personas_when_none_given() -> None:
    """Without personas the simulator ships demo personas, one of them approving at once."""
    sim: BankIDSimulator = create_simulator().state.bankid

    assert sim.personas[KARL].outcome == "approve"
    assert sim.personas[KARL].delay == 0
    assert all(len(p) == 12 for p in sim.personas)


def test_test_personas_are_valid_numbers() -> None:
    """The personas used by these tests have valid check digits (pnr() builds them)."""
    assert all(p["personal_number"] == pnr(p["personal_number"][:11]) for p in PERSONAS)


# --- dropped connections ----------------------------------------------------------


async def test_drop_is_remote_protocol_error_in_process(
    http: httpx.AsyncClient, sim: BankIDSimulator
) -> None:
    """fault drop surfaces as httpx.RemoteProtocolError through SimulatorTransport."""
    await http.post("/control/faults", json={"personal_number": TOLVAN, "fault": "drop"})

    with pytest.raises(httpx.RemoteProtocolError):
        await start_phone(http)

    assert len(sim.orders) == 1  # processed; only the answer was lost


async def test_drop_is_remote_protocol_error_from_uvicorn(clock: FakeClock) -> None:
    """Served by a real uvicorn on loopback, fault drop closes the connection mid-answer."""
    app = create_simulator(
        {"personas": [{"personal_number": KARL, "outcome": "approve", "fault": "drop"}]},
        clock=clock,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, log_level="critical", lifespan="off", http="h11", ws="none"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(
                    f"{RP}/phone/auth", json={"personalNumber": KARL, "callInitiator": "RP"}
                )
            healthy = await client.get("/phone")
    finally:
        server.should_exit = True
        await serving
        sock.close()

    assert healthy.status_code == 200
    assert app.state.bankid.calls["phone/auth"] == 1
