"""A simulator of the BankID RP API v6.0 as a Litestar app: RP API, "phone" page, controls.

It speaks the real wire format (UPSTREAMS.md section 1) under ``/rp/v6.0/``:
``auth``, ``sign``, ``phone/auth``, ``phone/sign``, ``collect``, ``cancel``; the
behaviour lives in ``simulator.py`` and the modules it puts together. Other routes::

    GET  /phone                                  personas and numbers with pending orders
    GET  /phone/{pnr}                            their pending orders, Approve / Deny
    POST /phone/{pnr}/{orderRef}/approve|deny    decide (303 back to the person's page)
    POST /control/faults                         inject: {"personal_number": pnr or "*",
                                                 "fault", "latency", "times"}
    POST /control/reset                          forget orders, counters and runtime faults
    GET  /control/stats                          calls per endpoint and the orders held

All state hangs off ``app.state.bankid`` (a ``BankIDSimulator``); the clock and the
sleep used for latency are injectable, so tests never wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Response, get, post
from litestar.datastructures import State
from litestar.handlers import asgi
from litestar.params import FromPath, JSONBody
from litestar.types import Receive, Scope, Send

from ciba_gateway_bankid_sim.phone_page import (
    OrderView,
    render_index,
    render_message,
    render_person,
)
from ciba_gateway_bankid_sim.settings import FaultControl, SimulatorSettings
from ciba_gateway_bankid_sim.simulator import BankIDSimulator

__all__ = ["create_simulator"]

_MAX_BODY = 1_000_000


# --- HTTP -----------------------------------------------------------------------


def _sim(state: State) -> BankIDSimulator:
    return state.bankid  # type: ignore[no-any-return]


_RP_PREFIX = "/rp/v6.0/"


@asgi("/rp/v6.0", is_mount=True, copy_scope=True)
async def rp_api(scope: Scope, receive: Receive, send: Send) -> None:
    """The RP API, served raw so that status, body and dropped connections are exact."""
    await _serve_rp(scope["app"].state.bankid, scope["path"], scope, receive, send)


async def _serve_rp(
    sim: BankIDSimulator, endpoint: str, scope: Scope, receive: Receive, send: Send
) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > _MAX_BODY:
            body = b"\xff"  # not JSON: answered with invalidParameters
            break
    headers = dict(scope["headers"])
    reply = await sim.handle(
        endpoint.strip("/"),
        scope["method"],
        headers.get(b"content-type", b"").decode("latin-1") or None,
        body,
    )
    if reply.drop:
        # Start an answer and never finish it: the server closes the connection
        # (uvicorn does), which the client sees as a RemoteProtocolError.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        return
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(reply.body)).encode()),
                *reply.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})


class _Simulator(Litestar):
    """The simulator's app: RP API calls go straight to ``_serve_rp``, the rest through Litestar.

    The RP API is raw bytes in and out (``rp_api``), so Litestar's middleware,
    router and scope state add nothing to it but CPU: about a sixth of the
    simulator's per-call cost, taken from the gateway it shares the machine with
    in the benchmarks. Mounted inside the gateway (``simulators:``), a call whose
    path does not start with the prefix takes the mounted ``rp_api`` route.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(_RP_PREFIX):
            await _serve_rp(self.state.bankid, path[len(_RP_PREFIX) :], scope, receive, send)
            return
        await super().__call__(scope, receive, send)


@get("/", include_in_schema=False)
async def index() -> Response[bytes]:
    """Send a browser to the phone page."""
    return Response(b"", status_code=302, headers={"Location": "phone"}, media_type=MediaType.TEXT)


@get("/phone", media_type=MediaType.HTML)
async def phone_index(state: State) -> str:
    """The people whose phone can be picked."""
    return render_index(_sim(state).people())


@get("/phone/{personal_number:str}", media_type=MediaType.HTML)
async def phone_person(state: State, personal_number: FromPath[str]) -> Response[str]:
    """One person's phone: pending orders with Approve / Deny."""
    sim = _sim(state)
    if not (len(personal_number) == 12 and personal_number.isdigit()):
        page = render_message("Unknown number", "Not a 12-digit personal number.", "../phone")
        return Response(page, status_code=404, media_type=MediaType.HTML)
    persona = sim.personas.get(personal_number)
    now = sim.clock()
    views = [
        OrderView(
            o.order_ref,
            o.kind,
            o.call_initiator,
            o.text,
            now - o.created_at,
            o.hint_code,
            o.text_format,
        )
        for o in sim.pending(personal_number)
    ]
    name = persona.full_name if persona else "Unknown person (no BankID)"
    return Response(render_person(personal_number, name, views), media_type=MediaType.HTML)


@post("/phone/{personal_number:str}/{order_ref:str}/{decision:str}", media_type=MediaType.HTML)
async def phone_decide(
    state: State,
    personal_number: FromPath[str],
    order_ref: FromPath[str],
    decision: FromPath[str],
) -> Response[str]:
    """Approve or deny, then 303 back to the person's page (relative, so mounts work)."""
    back = f"../../{personal_number}"
    if decision not in ("approve", "deny"):
        page = render_message("Unknown action", "Use approve or deny.", back)
        return Response(page, status_code=404, media_type=MediaType.HTML)
    if not _sim(state).decide(personal_number, order_ref, approve=decision == "approve"):
        page = render_message("Too late", "This order is no longer pending.", back)
        return Response(page, status_code=409, media_type=MediaType.HTML)
    return Response(b"", status_code=303, headers={"Location": back}, media_type=MediaType.TEXT)


@post("/control/faults", status_code=200)
async def control_faults(state: State, data: JSONBody[FaultControl]) -> dict[str, Any]:
    """Inject a fault or latency for one person or everyone (``*``)."""
    _sim(state).set_fault(data)
    return msgspec.to_builtins(data)  # type: ignore[no-any-return]


@post("/control/reset", status_code=204)
async def control_reset(state: State) -> None:
    """Forget every order, counter and runtime fault."""
    _sim(state).reset()


@get("/control/stats")
async def control_stats(state: State) -> dict[str, Any]:
    """Calls per endpoint and the orders currently held."""
    return _sim(state).stats()


def create_simulator(
    settings: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Litestar:
    """A Litestar app simulating BankID; ``settings`` as in README.md (msgspec-validated).

    With ``pki_dir`` the new PKI's ``root.pem`` is written there before the app is returned.

    Raises:
        msgspec.ValidationError: the settings are invalid (message names the field).
        OSError: ``pki_dir`` cannot be written.
    """
    parsed = msgspec.convert(dict(settings or {}), SimulatorSettings)
    simulator = BankIDSimulator(parsed, clock=clock, sleep=sleep)
    if parsed.pki_dir is not None:
        simulator.pki.write_root(parsed.pki_dir)
    return _Simulator(
        route_handlers=[
            rp_api,
            index,
            phone_index,
            phone_person,
            phone_decide,
            control_faults,
            control_reset,
            control_stats,
        ],
        state=State({"bankid": simulator}),
        openapi_config=None,
        logging_config=None,
    )
