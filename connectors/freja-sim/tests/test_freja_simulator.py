"""The Freja simulator on its own: wire rules, errors, timing, phone page, faults, keys."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest
from ciba_gateway_freja.details import Expected, TrustStore, verify_details
from ciba_gateway_freja_sim.app import create_simulator
from ciba_gateway_freja_sim.simulator import FrejaSimulator
from freja_support import (
    BASE_URL,
    CERT_FILE,
    KARL,
    NOBODY,
    OLLE,
    TOLVAN,
    b64json,
)
from litestar import Litestar

from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport

API = "/authentication/1.0"
SSN_KARL = b64json({"country": "SE", "ssn": KARL})
CERT_PEM = Path(CERT_FILE).read_text()


def init_body(user_info: str = TOLVAN, **fields: Any) -> str:
    """An initAuthRequest body for an SSN user, as the official client sends it."""
    request = {
        "userInfoType": "SSN",
        "userInfo": b64json({"country": "SE", "ssn": user_info}),
        **fields,
    }
    return f"initAuthRequest={b64json(request)}"


async def call(
    http: httpx.AsyncClient, operation: str, body: str, content_type: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return await http.post(f"{API}/{operation}", content=body.encode(), headers=headers)


async def start(http: httpx.AsyncClient, user_info: str = TOLVAN, **fields: Any) -> str:
    """Start an authentication and return its authRef."""
    response = await call(http, "initAuthentication", init_body(user_info, **fields))
    assert response.status_code == 200, response.text
    return response.json()["authRef"]  # type: ignore[no-any-return]


async def result(http: httpx.AsyncClient, auth_ref: str) -> httpx.Response:
    return await call(
        http, "getOneResult", f"getOneAuthResultRequest={b64json({'authRef': auth_ref})}"
    )


# --- wire rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "content_type"),
    [
        (lambda body: body, "application/json"),
        (lambda body: body, "text/plain"),
        (lambda body: body, None),
        (lambda body: body, "application/x-www-form-urlencoded"),
        (lambda body: body.split("=", 1)[0] + "=" + quote(body.split("=", 1)[1], safe=""), None),
        (lambda body: body + "&relyingPartyId=rp1", "application/json"),
        (lambda body: body.rstrip("=") + "\n", "application/json"),
    ],
    ids=["json", "text", "none", "form", "percent-encoded", "relying-party", "unpadded-newline"],
)
async def test_body_encodings_are_tolerated(
    http: httpx.AsyncClient,
    sim: FrejaSimulator,
    transform: Callable[[str], str],
    content_type: str | None,
) -> None:
    """Any Content-Type, percent-encoding, missing padding and relyingPartyId are accepted."""
    response = await call(http, "initAuthentication", transform(init_body()), content_type)

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"authRef"}
    assert sim.received[-1]["request"]["userInfoType"] == "SSN"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("initAuthRequest", 1000),
        (f"wrongName={b64json({'userInfoType': 'SSN'})}", 1000),
        ("initAuthRequest=%%%", 1000),
        ("initAuthRequest=bm90IGpzb24=", 1010),
        (f"initAuthRequest={b64json([1, 2])}", 1010),
        (init_body(extra=True), 1000),
        (f"initAuthRequest={b64json({'userInfoType': 'INFERRED', 'userInfo': 'N/A'})}", 1001),
        (f"initAuthRequest={b64json({'userInfo': SSN_KARL})}", 1001),
        (f"initAuthRequest={b64json({'userInfoType': 'SSN', 'userInfo': 'x'})}", 1002),
        (f"initAuthRequest={b64json({'userInfoType': 'EMAIL', 'userInfo': 'nobody'})}", 1002),
        (f"initAuthRequest={b64json({'userInfoType': 'PHONE', 'userInfo': 'call me'})}", 1002),
        (init_body(minRegistrationLevel="GOLD"), 1007),
        (init_body(attributesToReturn=[{"attribute": "SHOE_SIZE"}]), 2002),
        (init_body(attributesToReturn="SSN"), 2002),
        (init_body(userConfirmationMethod="RETINA"), 1000),
    ],
)
async def test_bad_init_requests_get_400_with_freja_codes(
    http: httpx.AsyncClient, body: str, code: int
) -> None:
    """Malformed bodies and fields are answered 400 {"code","message"} with Freja's code."""
    response = await call(http, "initAuthentication", body)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]


async def test_unknown_user_is_422_code_1012(http: httpx.AsyncClient) -> None:
    """A userInfo without a persona is answered 422 code 1012."""
    response = await call(http, "initAuthentication", init_body(NOBODY))

    assert response.status_code == 422
    assert response.json() == {
        "code": 1012,
        "message": "User with the specified userInfo does not exist in Freja eID database.",
    }


async def test_only_post_and_known_operations(http: httpx.AsyncClient) -> None:
    """GET is 405 with Allow: POST; an unknown operation is 404."""
    get = await http.get(f"{API}/initAuthentication")
    unknown = await call(http, "initSignature", init_body())

    assert get.status_code == 405
    assert get.headers["allow"] == "POST"
    assert unknown.status_code == 404


async def test_get_one_result_of_unknown_ref_is_1100(http: httpx.AsyncClient) -> None:
    """An unknown authRef is answered 422 code 1100."""
    response = await result(http, "nope")

    assert (response.status_code, response.json()["code"]) == (422, 1100)


# --- timing and statuses -------------------------------------------------------------------


async def test_statuses_follow_the_clock(http: httpx.AsyncClient, clock: FakeClock) -> None:
    """STARTED, then DELIVERED_TO_MOBILE after delivery_delay, then EXPIRED at 120 s."""
    auth_ref = await start(http)
    seen = [(await result(http, auth_ref)).json()["status"]]
    clock.advance(1)
    seen.append((await result(http, auth_ref)).json()["status"])
    clock.advance(119)
    seen.append((await result(http, auth_ref)).json()["status"])

    assert seen == ["STARTED", "DELIVERED_TO_MOBILE", "EXPIRED"]


async def test_lifetime_and_retention_are_configurable(
    make_simulator: Callable[..., Litestar], clock: FakeClock
) -> None:
    """auth_lifetime shortens the wait; after result_retention the authRef answers 1100."""
    app = make_simulator(auth_lifetime=30, result_retention=60)
    async with httpx.AsyncClient(transport=SimulatorTransport(app), base_url=BASE_URL) as http:
        auth_ref = await start(http)
        clock.advance(30)
        expired = (await result(http, auth_ref)).json()
        clock.advance(61)
        gone = await result(http, auth_ref)

    assert expired == {"authRef": auth_ref, "status": "EXPIRED"}
    assert gone.json()["code"] == 1100


async def test_approved_result_carries_a_verifiable_details_jws(
    http: httpx.AsyncClient, clock: FakeClock, sim: FrejaSimulator
) -> None:
    """APPROVED has details (header x5t + RS256) that verify, and the SSN userInfo is a string."""
    auth_ref = await start(
        http,
        KARL,
        minRegistrationLevel="PLUS",
        attributesToReturn=[{"attribute": "SSN"}, {"attribute": "LOA_LEVEL"}, {"attribute": "AGE"}],
    )
    clock.advance(6)
    body = (await result(http, auth_ref)).json()
    verified = verify_details(
        body["details"],
        TrustStore.load([(CERT_FILE, None)]),
        Expected(
            auth_ref=auth_ref,
            user_info_type="SSN",
            user_info=SSN_KARL,
            min_registration_level="PLUS",
        ),
        now=clock(),
        max_age=10,
        clock_skew=0,
    )

    assert body["status"] == "APPROVED"
    assert body["requestedAttributes"] == {
        "ssn": {"ssn": KARL, "country": "SE"},
        "loaLevel": "LOA3",
        "age": 35,
    }
    assert isinstance(sim.auths[auth_ref].payload["userInfo"], str)  # type: ignore[index]
    assert verified.timestamp_ms == int(clock() * 1000)


async def test_cancel_then_result_is_rp_canceled(http: httpx.AsyncClient) -> None:
    """cancel answers {} and the result becomes RP_CANCELED; a second cancel is 1100."""
    auth_ref = await start(http)
    body = f"cancelAuthRequest={b64json({'authRef': auth_ref})}"
    first = await call(http, "cancel", body)
    second = await call(http, "cancel", body)

    assert (first.status_code, first.json()) == (200, {})
    assert (await result(http, auth_ref)).json()["status"] == "RP_CANCELED"
    assert second.json()["code"] == 1100


async def test_get_results_lists_this_relying_partys_results(http: httpx.AsyncClient) -> None:
    """getResults with includePrevious ALL lists results; any other value is 1200."""
    auth_ref = await start(http)
    listed = await call(
        http, "getResults", f"getAuthResultsRequest={b64json({'includePrevious': 'ALL'})}"
    )
    refused = await call(
        http, "getResults", f"getAuthResultsRequest={b64json({'includePrevious': 'X'})}"
    )

    assert listed.json() == {"authenticationResults": [{"authRef": auth_ref, "status": "STARTED"}]}
    assert (refused.status_code, refused.json()["code"]) == (400, 1200)


async def test_second_start_cancels_both_then_2000(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Two active starts for one user end REJECTED; starts answer 2000 until the cooldown ends."""
    first = await start(http)
    second = await start(http)
    refused = await call(http, "initAuthentication", init_body())
    statuses = [(await result(http, ref)).json()["status"] for ref in (first, second)]
    clock.advance(30)
    again = await call(http, "initAuthentication", init_body())

    assert statuses == ["REJECTED", "REJECTED"]
    assert (refused.status_code, refused.json()["code"]) == (422, 2000)
    assert again.status_code == 200


# --- the phone page --------------------------------------------------------------------


async def test_phone_page_escapes_persona_text(make_simulator: Callable[..., Litestar]) -> None:
    """Names and relyingPartyId on the phone page are HTML-escaped; the page has no script."""
    app = make_simulator(
        personas=[{"user_info": KARL, "attributes": {"name": "<script>alert(1)</script>"}}]
    )
    async with httpx.AsyncClient(transport=SimulatorTransport(app), base_url=BASE_URL) as http:
        await call(http, "initAuthentication", init_body(KARL) + "&relyingPartyId=%3Cb%3Erp")
        page = await http.get("/phone")

    assert page.status_code == 200
    assert "<script" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;rp" in page.text
    assert 'name="viewport"' in page.text


async def test_approve_via_the_form(http: httpx.AsyncClient) -> None:
    """The Approve form POSTs, redirects 303 back to the phone, and the result is APPROVED."""
    auth_ref = await start(http)
    page = await http.get("/phone")
    response = await http.post(f"/phone/{auth_ref}/approve")
    after = await http.get("/phone")

    assert f'action="phone/{auth_ref}/approve"' in page.text
    assert f'action="phone/{auth_ref}/reject"' in page.text
    assert (response.status_code, response.headers["location"]) == (303, "../../phone")
    assert (await result(http, auth_ref)).json()["status"] == "APPROVED"
    assert auth_ref not in after.text


async def test_reject_via_the_form_is_canceled(http: httpx.AsyncClient) -> None:
    """The Reject button is the user declining: CANCELED; deciding again is 409."""
    auth_ref = await start(http)
    response = await http.post(f"/phone/{auth_ref}/reject")
    again = await http.post(f"/phone/{auth_ref}/approve")

    assert response.status_code == 303
    assert (await result(http, auth_ref)).json()["status"] == "CANCELED"
    assert again.status_code == 409


async def test_below_level_person_cannot_approve(http: httpx.AsyncClient) -> None:
    """The page disables Approve for a person below the required level, and the POST is 409."""
    auth_ref = await start(http, OLLE, minRegistrationLevel="PLUS")
    page = await http.get("/phone")
    response = await http.post(f"/phone/{auth_ref}/approve")

    assert "upgrade needed" in page.text
    assert "disabled" in page.text
    assert response.status_code == 409


# --- faults ---------------------------------------------------------------------------------


async def test_control_faults_and_reset(http: httpx.AsyncClient, sim: FrejaSimulator) -> None:
    """A runtime http503 hits the next call only (times 1); reset forgets authentications."""
    set_fault = await http.post("/control/faults", json={"kind": "http503", "times": 1})
    failed = await call(http, "initAuthentication", init_body())
    auth_ref = await start(http)
    reset = await http.post("/control/reset")

    assert set_fault.status_code == 200
    assert (failed.status_code, failed.text) == (503, "Service Unavailable")
    assert auth_ref not in sim.auths
    assert reset.status_code == 204
    assert sim.calls == {}


async def test_persona_fault_applies_to_that_persona_only(
    make_simulator: Callable[..., Litestar], sleeps: FakeSleep
) -> None:
    """A persona's fault (latency + http500 on init) hits its calls, not other personas'."""
    app = make_simulator(
        personas=[
            {"user_info": KARL, "fault": {"kind": "http500", "latency": 2.5}},
            {"user_info": TOLVAN},
        ]
    )
    async with httpx.AsyncClient(transport=SimulatorTransport(app), base_url=BASE_URL) as http:
        karl = await call(http, "initAuthentication", init_body(KARL))
        tolvan = await call(http, "initAuthentication", init_body(TOLVAN))

    assert (karl.status_code, karl.json()["code"]) == (500, 0)
    assert tolvan.status_code == 200
    assert sleeps.calls == [2.5]


async def test_drop_processes_then_cuts_the_connection(
    http: httpx.AsyncClient, sim: FrejaSimulator
) -> None:
    """Fault drop: the authentication is created, the answer is cut off (RemoteProtocolError)."""
    await http.post("/control/faults", json={"kind": "drop", "endpoints": ["initAuthentication"]})

    with pytest.raises(httpx.RemoteProtocolError):
        await call(http, "initAuthentication", init_body())
    assert len(sim.auths) == 1


async def test_stats_report_calls_and_requests(http: httpx.AsyncClient) -> None:
    """/control/stats lists call counts, decoded requests and the signing x5t."""
    await start(http)
    stats = (await http.get("/control/stats")).json()

    assert stats["calls"] == {"initAuthentication": 1}
    assert stats["received"][0]["request"]["userInfoType"] == "SSN"
    assert stats["x5t"] == TrustStore.load([(CERT_FILE, None)]).certs[0].x5t


# --- keys and settings --------------------------------------------------------------------


def test_key_dir_is_written_once_and_reused(tmp_path: Path, clock: FakeClock) -> None:
    """key_dir gets key.pem (owner-only) and cert.pem on first start; later starts reuse them."""
    key_dir = tmp_path / "var" / "freja-sim"
    first = create_simulator({"key_dir": str(key_dir)}, clock=clock).state.freja
    second = create_simulator({"key_dir": str(key_dir)}, clock=clock).state.freja

    assert first.signing.x5t == second.signing.x5t
    assert stat.S_IMODE(os.stat(key_dir / "key.pem").st_mode) == 0o600
    assert TrustStore.load([(str(key_dir / "cert.pem"), None)]).certs[0].x5t == first.signing.x5t


async def test_signing_cert_is_served(http: httpx.AsyncClient) -> None:
    """GET /signing-cert.pem serves the certificate a connector should pin."""
    response = await http.get("/signing-cert.pem")

    assert response.text == CERT_PEM


@pytest.mark.parametrize(
    "settings",
    [
        {"unknown": 1},
        {"signing_key_file": "k.pem"},
        {"personas": [{"user_info": "19900101-1239"}]},
        {"personas": [{"user_info": KARL}, {"user_info": KARL}]},
        {"personas": [{"user_info": KARL, "outcome": "maybe"}]},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any]) -> None:
    """Unknown keys, half a key pair, bad or duplicate personas raise ValidationError."""
    with pytest.raises(msgspec.ValidationError):
        create_simulator(settings)
