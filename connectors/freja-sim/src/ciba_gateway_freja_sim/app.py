"""A simulator of the Freja eID authentication API as a Litestar app: RP API, phone page, controls.

Routes (relative to wherever the app is mounted)::

    POST /authentication/1.0/{initAuthentication,getOneResult,getResults,cancel}
    POST /sign/1.0/{initSignature,getOneResult,cancel}
    GET  /phone                          pending authentications, Approve / Reject
    POST /phone/{authRef}/approve|reject decide (303 back to /phone)
    POST /control/faults                 {"user": user_info or "*", "kind", "latency",
                                          "endpoints", "times"}
    POST /control/reset                  forget authentications, counters, runtime faults
    GET  /control/stats                  calls, decoded requests received, authentications
    GET  /signing-cert.pem               the certificate that signs ``details``

The behaviour lives in ``simulator.py`` and the modules it puts together; all state
hangs off ``app.state.freja`` (a ``FrejaSimulator``). Clock and sleep are injectable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from ciba_gateway_freja.wire import OPERATIONS
from litestar import Litestar, MediaType, Response, get, post
from litestar.datastructures import State
from litestar.handlers import asgi
from litestar.params import FromPath, JSONBody
from litestar.types import Receive, Scope, Send

from ciba_gateway_freja_sim.phone_page import render_message, render_phone
from ciba_gateway_freja_sim.settings import FaultControl, SimulatorSettings
from ciba_gateway_freja_sim.signing import SigningMaterial, generate, load, load_or_create
from ciba_gateway_freja_sim.simulator import FrejaSimulator

__all__ = ["create_simulator"]

_MAX_BODY = 64 * 1024


def _sim(state: State) -> FrejaSimulator:
    return state.freja  # type: ignore[no-any-return]


@asgi("/authentication/1.0", is_mount=True, copy_scope=True)
async def rp_api(scope: Scope, receive: Receive, send: Send) -> None:
    """The authentication API, served raw: any Content-Type, exact statuses, dropped answers."""
    await _serve_api("/authentication/1.0", scope, receive, send)


@asgi("/sign/1.0", is_mount=True, copy_scope=True)
async def sign_api(scope: Scope, receive: Receive, send: Send) -> None:
    """The signature API (initSignature, getOneResult, cancel), served like rp_api."""
    await _serve_api("/sign/1.0", scope, receive, send)


async def _serve_api(mount: str, scope: Scope, receive: Receive, send: Send) -> None:
    sim: FrejaSimulator = scope["app"].state.freja
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= _MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks) if size <= _MAX_BODY else b""
    path = f"{mount}/{scope['path'].strip('/')}"
    reply = await sim.handle(OPERATIONS.get(path, path), scope["method"], body)
    headers = [
        (b"content-type", reply.media_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
        *reply.headers,
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if reply.drop:
        # The request was processed; the answer is announced but never sent, so the
        # server closes the connection and the client sees it cut off.
        return
    await send({"type": "http.response.body", "body": reply.body})


@get("/", include_in_schema=False)
async def index() -> Response[bytes]:
    """Send a browser to the phone page."""
    return Response(b"", status_code=302, headers={"Location": "phone"}, media_type=MediaType.TEXT)


@get("/phone", media_type=MediaType.HTML)
async def phone(state: State) -> str:
    """Pending authentications with Approve / Reject."""
    return render_phone(_sim(state).pending())


@post("/phone/{auth_ref:str}/{decision:str}", media_type=MediaType.HTML)
async def phone_decide(
    state: State, auth_ref: FromPath[str], decision: FromPath[str]
) -> Response[str]:
    """Approve or reject in the app, then 303 back to the phone page (relative)."""
    back = "../../phone"
    if decision not in ("approve", "reject"):
        page = render_message("Unknown action", "Use approve or reject.", back)
        return Response(page, status_code=404, media_type=MediaType.HTML)
    if not _sim(state).decide(auth_ref, approve=decision == "approve"):
        page = render_message("Not possible", "This request is no longer pending.", back)
        return Response(page, status_code=409, media_type=MediaType.HTML)
    return Response("", status_code=303, headers={"Location": back}, media_type=MediaType.TEXT)


@post("/control/faults", status_code=200)
async def control_faults(state: State, data: JSONBody[FaultControl]) -> dict[str, Any]:
    """Add a fault rule for one persona or every call (``*``)."""
    _sim(state).set_fault(data)
    return msgspec.to_builtins(data)  # type: ignore[no-any-return]


@post("/control/reset", status_code=204)
async def control_reset(state: State) -> None:
    """Forget every authentication, counter and runtime fault."""
    _sim(state).reset()


@get("/control/stats")
async def control_stats(state: State) -> dict[str, Any]:
    """Calls per operation, decoded requests and the authentications held."""
    return _sim(state).stats()


@get("/signing-cert.pem", media_type="application/x-pem-file")
async def signing_cert(state: State) -> bytes:
    """The certificate a connector should trust for this simulator's ``details``."""
    return _sim(state).signing.cert_pem()


def _signing(settings: SimulatorSettings, now: float) -> SigningMaterial:
    if settings.signing_key_file is not None and settings.signing_cert_file is not None:
        return load(settings.signing_key_file, settings.signing_cert_file)
    if settings.key_dir is not None:
        return load_or_create(settings.key_dir, now)
    return generate(now)


def create_simulator(
    settings: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Litestar:
    """A Litestar app simulating Freja eID; ``settings`` as in README.md (msgspec-validated).

    ``clock`` is wall-clock epoch seconds (the signed timestamps come from it).

    Raises:
        msgspec.ValidationError: the settings are invalid (the message names the field).
    """
    parsed = msgspec.convert(dict(settings or {}), SimulatorSettings)
    simulator = FrejaSimulator(parsed, signing=_signing(parsed, clock()), clock=clock, sleep=sleep)
    return Litestar(
        route_handlers=[
            rp_api,
            sign_api,
            index,
            phone,
            phone_decide,
            control_faults,
            control_reset,
            control_stats,
            signing_cert,
        ],
        state=State({"freja": simulator}),
        openapi_config=None,
        logging_config=None,
    )
