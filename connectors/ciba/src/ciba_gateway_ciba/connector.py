"""The ``ciba`` connector: the gateway as a CIBA client of another CIBA provider.

``start`` sends a backchannel authentication request upstream (login hint from
a template, scope, acr_values, binding_message, requested_expiry). In **poll**
mode the gateway's driver then calls ``poll``, which asks the upstream token
endpoint at the upstream's ``interval`` (+5 s after each ``slow_down``). In
**ping** mode ``start`` also sends a fresh ``client_notification_token``; the
upstream POSTs to the ``/ping`` route, which checks that bearer token, takes it
(single use), redeems the grant once and settles the request through
``ConnectorDeps.resolve`` (the flow engine). Either way the ID token is verified
(idtoken.py), mapped to an Identity (identity.py) and checked against the hint.

CIBA has no cancel: when the gateway's request expires first, ``cancel``
forgets the notification token (a late ping is refused) and the upstream
request is simply abandoned; a late result is never redeemed.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import msgspec
import structlog

from ciba_gateway.connector import (
    Approved,
    BaseConnector,
    CallbackRequest,
    CallbackResponse,
    CallbackRoute,
    ConnectorDeps,
    Denied,
    Expired,
    Failed,
    Identity,
    InvalidHint,
    LoginHint,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UpstreamRejected,
    UpstreamUnavailable,
    best_effort,
    decode_json,
    identity_mismatch,
)
from ciba_gateway_ciba.assertion import ClientCredentials
from ciba_gateway_ciba.client import Provider
from ciba_gateway_ciba.config import Config
from ciba_gateway_ciba.errors import safe_code, started, translated, unavailable
from ciba_gateway_ciba.identity import hint_mismatch, to_identity
from ciba_gateway_ciba.idtoken import verify_id_token
from ciba_gateway_ciba.wire import (
    Answer,
    BackchannelAnswer,
    Metadata,
    TokenAnswer,
    UpstreamProtocolError,
    decode,
    error_of,
)

__all__ = ["CibaConnector", "Config"]

SLOW_DOWN_STEP = 5.0
"""Seconds added to the interval after each ``slow_down`` (CIBA Core 11, RFC 8628 3.5)."""
PING_GRACE = 60.0
"""Seconds a notification token outlives the gateway's request."""

_TERMINAL_TOKEN_ERRORS: dict[str, type[Denied | Expired | Failed]] = {
    "access_denied": Denied,
    "expired_token": Expired,
    "transaction_failed": Failed,
}


class PingRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a ``client_notification_token`` stands for (stored under its hash)."""

    ref: str
    session: dict[str, Any]
    expires_at: float


_record_decoder = msgspec.json.Decoder(PingRecord)


def _token_key(token: str) -> str:
    return "ping:" + hashlib.sha256(token.encode()).hexdigest()


def _hint_of(session: dict[str, Any]) -> LoginHint | None:
    try:
        return msgspec.convert(session.get("hint"), LoginHint)
    except msgspec.ValidationError:
        return None


class CibaConnector(BaseConnector):
    """Authenticates through an upstream CIBA provider (poll or ping).

    ``transport`` replaces the network for the upstream calls (tests).
    """

    Config: ClassVar[type[Config]] = Config
    login_hint_kinds: ClassVar[frozenset[str]] = frozenset({"ssn", "tel", "email"})

    def __init__(
        self,
        config: Config,
        deps: ConnectorDeps,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.deps = deps
        credentials = ClientCredentials(config.client_id, config.auth, deps.clock)
        self.provider = Provider(config, credentials, deps.clock, transport=transport)
        self._log = structlog.get_logger("ciba_gateway_ciba").bind(
            connector="ciba", tenant=deps.tenant_id, instance=deps.instance_name
        )

    # --- start --------------------------------------------------------------

    async def start(self, request: StartRequest) -> Started:
        """Send the backchannel authentication request; refuse with a ConnectorError."""
        hint = request.login_hint
        template = self.config.login_hint.get(hint.kind)
        if template is None:
            raise InvalidHint(f"this upstream is not configured for {hint.kind} login hints")
        country = hint.country or ""
        upstream_hint = template.format(kind=hint.kind, value=hint.value, country=country)
        form = {"scope": " ".join(self.config.scope), "login_hint": upstream_hint}
        if self.config.acr_values:
            form["acr_values"] = " ".join(self.config.acr_values)
        if self.config.binding_message and request.binding_message:
            form["binding_message"] = request.binding_message
        if self.config.requested_expiry and request.expires_at:
            remaining = math.ceil(request.expires_at - self.deps.clock())
            form["requested_expiry"] = str(max(remaining, 1))
        session: dict[str, Any] = {
            "interval": self.config.interval,
            "hint": msgspec.to_builtins(hint),
        }
        key = None
        if self.config.delivery_mode == "ping":
            token = secrets.token_urlsafe(32)
            form["client_notification_token"] = token
            key = _token_key(token)
            # Stored before the request goes out: a ping may beat the upstream's answer.
            await self._store(key, self._record(request, session))
        try:
            started = await self._backchannel(form)
        except BaseException:
            if key is not None:
                await self.deps.state.take(key)
            raise
        session = {
            **session,
            "auth_req_id": started.auth_req_id,
            "interval": float(started.interval or self.config.interval),
        }
        self._log.info("ciba_upstream_started", mode=self.config.delivery_mode)
        if key is None:
            return Started(session=session, poll_after=session["interval"])
        if await self.deps.state.take(key) is not None:  # else a ping already took it
            await self._store(key, self._record(request, session))
        return Started(session={**session, "ping": key}, poll_after=None)

    def _record(self, request: StartRequest, session: dict[str, Any]) -> PingRecord:
        deadline = (request.expires_at or self.deps.clock() + 600) + PING_GRACE
        return PingRecord(ref=request.ref, session=session, expires_at=deadline)

    async def _backchannel(self, form: dict[str, str]) -> BackchannelAnswer:
        with translated(self._log, "start"):
            self._check_support(await self.provider.metadata())
            answer = await self.provider.backchannel(form)
        return started(self._log, answer)

    def _check_support(self, metadata: Metadata) -> None:
        """Refuse before sending when discovery says the upstream cannot serve this config."""
        modes = metadata.backchannel_token_delivery_modes_supported
        if modes and self.config.delivery_mode not in modes:
            raise UpstreamRejected(
                f"the upstream provider does not deliver in {self.config.delivery_mode} mode"
            )
        methods = metadata.token_endpoint_auth_methods_supported
        if methods and self.config.auth.method not in methods:
            raise UpstreamRejected(
                f"the upstream provider does not accept {self.config.auth.method}"
            )

    # --- poll ---------------------------------------------------------------

    async def poll(self, session: dict[str, Any]) -> PollResult:
        """Ask the upstream token endpoint once; map its answer to an outcome."""
        if "ping" in session:
            # The upstream pings; nothing to ask until then (the driver does not poll).
            return Pending(poll_after=max(float(session["interval"]), 60.0))
        return await self._redeem(session)

    async def _redeem(self, session: dict[str, Any]) -> PollResult:
        auth_req_id = session.get("auth_req_id")
        if not isinstance(auth_req_id, str) or not auth_req_id:
            return Failed(reason="the upstream session has no auth_req_id")
        interval = float(session.get("interval") or self.config.interval)
        try:
            with translated(self._log, "token"):
                answer = await self.provider.token(auth_req_id)
        except UpstreamRejected as exc:
            return Failed(reason=exc.description)
        if answer.status == 200:
            return await self._approved(answer, session, auth_req_id)
        error = error_of(answer)
        if error.error == "authorization_pending":
            return Pending(poll_after=interval)
        if error.error == "slow_down":
            interval += SLOW_DOWN_STEP
            return Pending(poll_after=interval, session={**session, "interval": interval})
        outcome = _TERMINAL_TOKEN_ERRORS.get(error.error)
        code = safe_code(error.error)
        self._log.info("ciba_upstream_refused", status=answer.status, error=code)
        if outcome is not None:
            return outcome(reason=f"the upstream provider answered {error.error}")
        if unavailable(answer.status, error.error):
            raise UpstreamUnavailable(f"the upstream token endpoint failed ({code})")
        return Failed(reason=f"the upstream provider refused the token request ({code})")

    async def _approved(
        self, answer: Answer, session: dict[str, Any], auth_req_id: str
    ) -> Approved | Failed:
        try:
            with translated(self._log, "verify"):
                identity = await self._verified(answer, auth_req_id)
        except UpstreamRejected as exc:
            return Failed(reason=exc.description)
        hint = _hint_of(session)
        if hint is None:
            return Failed(reason="the upstream session does not name the person asked for")
        mismatch = hint_mismatch(identity, hint)
        if mismatch is not None:
            identity_mismatch(self._log, check=hint.kind)
            return Failed(reason=mismatch)
        self._log.info("ciba_upstream_approved")
        return Approved(identity=identity)

    async def _verified(self, answer: Answer, auth_req_id: str) -> Identity:
        """The Identity of a token answer whose ID token (and userinfo) passed every check."""
        tokens = decode(answer.body, TokenAnswer)
        metadata = await self.provider.metadata()
        claims = await verify_id_token(
            tokens.id_token,
            keys=self.provider.keys,
            issuer=metadata.issuer,
            client_id=self.config.client_id,
            algorithms=metadata.id_token_signing_alg_values_supported,
            now=self.deps.clock(),
            skew=self.config.clock_skew,
            auth_req_id=auth_req_id,
            access_token=tokens.access_token,
            require_at_hash=self.config.require_at_hash,
        )
        if self.config.userinfo:
            claims = await self._with_userinfo(claims, tokens.access_token)
        return to_identity(claims, self.config.identity, self.deps.clock())

    async def _with_userinfo(self, claims: dict[str, Any], access_token: str) -> dict[str, Any]:
        """The ID token's claims plus the userinfo claims it lacks (same ``sub`` only)."""
        extra = await self.provider.userinfo(access_token)
        # OIDC Core 5.3.2: the userinfo sub must be the ID token's, or it is not used.
        if extra.get("sub") != claims.get("sub"):
            raise UpstreamProtocolError("the userinfo sub is not the ID token's")
        return {**extra, **claims}

    # --- ping ---------------------------------------------------------------

    def routes(self) -> Sequence[CallbackRoute]:
        if self.config.delivery_mode != "ping":
            return ()
        return (CallbackRoute(path="/ping", methods=("POST",), handler=self.ping),)

    async def ping(self, request: CallbackRequest) -> CallbackResponse:
        """The upstream's notification (CIBA Core 10.2): check the bearer, redeem once, settle."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _answer(401, "a bearer client_notification_token is required")
        key = _token_key(token.strip())
        raw = await self.deps.state.take(key)
        if raw is None:
            return _answer(401, "unknown or already used client_notification_token")
        record = _record_decoder.decode(raw)
        try:
            body = decode_json(request.body)
        except msgspec.DecodeError:
            body = None
        pinged = body.get("auth_req_id") if isinstance(body, dict) else None
        # Before the upstream's answer to start arrived the record has no auth_req_id yet;
        # the bearer token, which only the upstream has, vouches for the body's.
        expected = record.session.get("auth_req_id", pinged)
        if not isinstance(pinged, str) or not pinged or pinged != expected:
            await self._store(key, record)
            return _answer(400, "the body must carry the auth_req_id of this token")
        try:
            outcome = await self._redeem({**record.session, "auth_req_id": pinged})
        except UpstreamUnavailable:
            await self._store(key, record)
            return _answer(503, "the upstream token endpoint is unavailable; ping again")
        if isinstance(outcome, Pending):
            await self._store(key, record)
            return CallbackResponse(status=204)
        if not await self.deps.resolve(record.ref, outcome):
            self._log.info("ciba_ping_late")
        return CallbackResponse(status=204)

    async def _store(self, key: str, record: PingRecord) -> None:
        """Store (or put back) the record of a notification token until its deadline."""
        ttl = max(record.expires_at - self.deps.clock(), 1.0)
        await self.deps.state.put(key, msgspec.json.encode(record), ttl)

    # --- cancel / close -----------------------------------------------------

    async def cancel(self, session: dict[str, Any]) -> None:
        """CIBA has no cancel: forget the notification token; the upstream request is abandoned."""
        key = session.get("ping")
        if isinstance(key, str):
            await best_effort(lambda: self.deps.state.take(key), log=self._log, event="ciba_cancel")

    async def aclose(self) -> None:
        """Close the HTTP client, best effort."""
        await best_effort(self.provider.aclose, log=self._log, event="ciba_close")


def _answer(status: int, description: str) -> CallbackResponse:
    error = "invalid_request" if status == 400 else "invalid_token"
    if status == 503:
        error = "temporarily_unavailable"
    body = msgspec.json.encode({"error": error, "error_description": description})
    headers = {"WWW-Authenticate": f'Bearer error="{error}"'} if status == 401 else {}
    return CallbackResponse(
        status=status, body=body, media_type="application/json", headers=headers
    )
