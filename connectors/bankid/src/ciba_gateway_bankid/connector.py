"""The BankID connector: CIBA requests to BankID RP API v6.0 orders.

``start`` sends ``/phone/auth`` when a call initiator is known (from a ``phoneAuth``
authorization_details entry or the config), otherwise ``/auth`` with
``requirement.personalNumber``; a request with typed details (payment_initiation,
approval) is a ``/phone/sign`` or ``/sign`` order instead (``signature.py``).
``poll`` collects; ``cancel`` cancels. README.md documents the config and the full
mapping of answers to outcomes.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import httpx
import msgspec
import structlog
from msgspec import Meta

from ciba_gateway.connector import (
    Approved,
    BaseConnector,
    ConnectorDeps,
    Denied,
    Expired,
    Failed,
    HttpSettings,
    Identity,
    InvalidAuthorizationDetails,
    InvalidHint,
    LoginHint,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UpstreamRejected,
    best_effort,
    build_transport,
    call_with_retries,
    identity_mismatch,
    is_transient,
    mask_national_id,
)
from ciba_gateway_bankid.client import BankIDClient
from ciba_gateway_bankid.errors import (
    MalformedAnswer,
    not_pending,
    safe_code,
    start_retryable,
    translated,
)
from ciba_gateway_bankid.personnummer import birthdate, is_valid
from ciba_gateway_bankid.signature import SignPlan, plan, verify
from ciba_gateway_bankid.trust import Roots
from ciba_gateway_bankid.wire import (
    AuthRequest,
    CollectResponse,
    CompletionData,
    PhoneAuthRequest,
    PhoneRequirement,
    PhoneSignRequest,
    Requirement,
    SignRequest,
)

__all__ = ["BankIDConnector", "Config"]

Sleep = Callable[[float], Awaitable[None]]
Predicate = Callable[[BaseException], bool]
T = TypeVar("T")

StartBody = AuthRequest | PhoneAuthRequest | SignRequest | PhoneSignRequest
_ENDPOINTS: Mapping[type, str] = {
    AuthRequest: "auth",
    PhoneAuthRequest: "phone/auth",
    SignRequest: "sign",
    PhoneSignRequest: "phone/sign",
}

MAX_MALFORMED_COLLECTS = 3
"""Collects in a row that were not the documented JSON before the request fails."""
# userVisibleData may be at most 1 500 characters after base64: 1 125 bytes of text.
_MAX_VISIBLE_BYTES = 1_125


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``bankid`` connector's settings in a tenant's YAML (documented in README.md)."""

    base_url: Annotated[str, Meta(pattern=r"^https?://")]
    """RP API root, e.g. ``https://appapi2.test.bankid.com/rp/v6.0``."""
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    """Timeouts, mTLS (the RP certificate, BankID's pinned root) and retry attempts."""
    call_initiator: Literal["user", "RP"] | None = None
    """Default for ``/phone/auth``; None sends ``/auth`` unless the request asks for phoneAuth."""
    end_user_ip: str | None = None
    """``endUserIp`` for ``/auth``; None uses the address the gateway saw."""
    pin_code: bool = False
    """Require the security code even when the user has biometrics enabled."""
    certificate_policies: tuple[Annotated[str, Meta(min_length=1)], ...] = ()
    """OIDs of the BankID kinds accepted; empty keeps BankID's defaults."""
    show_client_name: bool = True
    """Show the client's display name above the binding message in the app."""
    signature_ca_file: Annotated[str, Meta(min_length=1)] | None = None
    """PEM root(s) a sign order's signer and OCSP responder must chain to; None refuses signing."""
    poll_interval: Annotated[float, Meta(ge=1.0, le=30.0)] = 2.0
    """Seconds between two collects (BankID asks for 2)."""
    acr: str = "urn:grn:authn:se:bankid"
    """The ``acr`` of the identities this connector produces."""
    amr: tuple[str, ...] = ("bankid",)
    """The ``amr`` of the identities this connector produces."""

    def __post_init__(self) -> None:
        if self.end_user_ip is not None:
            try:
                ipaddress.ip_address(self.end_user_ip)
            except ValueError:
                raise ValueError("end_user_ip must be an IPv4 or IPv6 address") from None


# failed hintCode (lower-cased) -> outcome; reasons paraphrase BankID's RFA texts.
_FAILURES: Mapping[str, Denied | Expired | Failed] = {
    "usercancel": Denied(reason="The user cancelled in the BankID app (userCancel)."),
    "userdeclinedcall": Denied(
        reason="The user declined in the BankID app: they are not on a call with us "
        "(userDeclinedCall)."
    ),
    "expiredtransaction": Expired(
        reason="The BankID app did not respond in time; the order expired (expiredTransaction)."
    ),
    "certificateerr": Failed(
        reason="The user's BankID is blocked, revoked or too old; they must get a new one "
        "from their bank (certificateErr)."
    ),
    "startfailed": Failed(
        reason="No BankID app picked up the order in time: the user has no BankID or did "
        "not open the app (startFailed)."
    ),
    "cancelled": Failed(
        reason="The order was cancelled because a new BankID order was started for the "
        "same user (cancelled)."
    ),
    "notsupportedbyuserapp": Failed(
        reason="The user's BankID app does not support this request; it must be updated "
        "(notSupportedByUserApp)."
    ),
    "transactionriskblocked": Failed(
        reason="BankID blocked the order because of its risk assessment (transactionRiskBlocked)."
    ),
}

_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def _same_person(session: Mapping[str, Any], identity: Identity) -> bool:
    """The completion's personal number is the one the order was started for.

    A session without it (started before this check existed) does not match: an
    unverifiable approval fails rather than issuing tokens for someone else.
    """
    asked = session.get("personalNumber")
    return isinstance(asked, str) and asked == identity.national_id


def _visible_data(text: str) -> str:
    data = text.encode()
    if len(data) > _MAX_VISIBLE_BYTES:
        data = data[:_MAX_VISIBLE_BYTES].decode(errors="ignore").encode()
    return base64.b64encode(data).decode("ascii")


class BankIDConnector(BaseConnector):
    """Authenticates Swedish personal numbers with BankID (``/auth`` or ``/phone/auth``).

    ``transport`` replaces the network (tests run it against the simulator) and
    ``sleep`` the wait between retries. By default calls go through
    ``build_transport(config.http)``, the transport of every outbound client.
    """

    Config: ClassVar[type[Config]] = Config
    login_hint_kinds: ClassVar[frozenset[str]] = frozenset({"ssn"})
    authorization_details_types: ClassVar[frozenset[str]] = frozenset(
        {"phoneAuth", "payment_initiation", "approval"}
    )

    def __init__(
        self,
        config: Config,
        deps: ConnectorDeps,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config
        self._clock = deps.clock
        self._sleep = sleep
        http = config.http
        self._client = BankIDClient(
            config.base_url,
            transport or build_transport(http),
            httpx.Timeout(http.timeout, connect=http.connect_timeout),
        )
        self._log = structlog.get_logger("ciba_gateway_bankid").bind(
            connector="bankid", tenant=deps.tenant_id, instance=deps.instance_name
        )
        self._roots: Roots | None = None
        if config.signature_ca_file is not None:
            self._roots = Roots.load(config.signature_ca_file)
        else:
            self._log.info("bankid_signing_unavailable", reason="no signature_ca_file")

    # --- start --------------------------------------------------------------

    async def start(self, request: StartRequest) -> Started:
        """Start an order for the hinted personal number; refuse with a ConnectorError."""
        pnr = self._personal_number(request.login_hint)
        sign = plan(request, show_client_name=self.config.show_client_name)
        if sign is not None and self._roots is None:
            raise InvalidAuthorizationDetails(
                "this BankID connector cannot verify signatures (no signature_ca_file), "
                "so it cannot prove what was approved: payment_initiation and approval "
                "details are refused"
            )
        body = self._order(request, pnr, sign)
        log = self._log.bind(pnr=mask_national_id(pnr), endpoint=_ENDPOINTS[type(body)])
        with translated(log, "start"):
            order = await self._retried(lambda: self._client.start(body), start_retryable)
        # debug: the access log line records the request, and the order's outcome
        # (bankid_collected, bankid_order_cancelled) is logged at info with its orderRef.
        # At info this line was 5% of a worker's CPU on the bc-authorize benchmark.
        log.debug("bankid_order_started", order_ref=order.order_ref)
        session: dict[str, Any] = {"orderRef": order.order_ref, "personalNumber": pnr}
        if sign is not None:
            session["sign"] = msgspec.to_builtins(sign)
        return Started(session=session, poll_after=self.config.poll_interval)

    def _order(self, request: StartRequest, pnr: str, sign: SignPlan | None) -> StartBody:
        """The /phone/auth body when a call initiator is known, else the /auth body.

        With a sign plan, the same choice between /phone/sign and /sign.
        """
        pin_code = self.config.pin_code or None
        policies = self.config.certificate_policies or None
        initiator = self._call_initiator(request.authorization_details)
        data: dict[str, Any] = {"user_visible_data": self._visible_text(request)}
        if sign is not None:
            data = {
                "user_visible_data": sign.visible,
                "user_visible_data_format": "simpleMarkdownV1",
                "user_non_visible_data": sign.non_visible,
            }
        if initiator is None:
            return (SignRequest if sign else AuthRequest)(
                end_user_ip=self.config.end_user_ip or request.end_user_ip,
                requirement=Requirement(
                    personal_number=pnr, pin_code=pin_code, certificate_policies=policies
                ),
                **data,
            )
        requirement = None
        if pin_code or policies:
            requirement = PhoneRequirement(pin_code=pin_code, certificate_policies=policies)
        return (PhoneSignRequest if sign else PhoneAuthRequest)(
            personal_number=pnr, call_initiator=initiator, requirement=requirement, **data
        )

    def _personal_number(self, hint: LoginHint) -> str:
        if hint.kind != "ssn":
            raise InvalidHint("BankID needs a Swedish personal identity number (ssn)")
        if hint.country not in (None, "SE"):
            raise InvalidHint("BankID serves Swedish personal identity numbers only")
        if not is_valid(hint.value):
            raise InvalidHint("not a valid 12-digit Swedish personal identity number")
        return hint.value

    def _call_initiator(self, details: Sequence[Mapping[str, Any]]) -> Literal["user", "RP"] | None:
        for entry in details:
            if entry.get("type") != "phoneAuth":
                continue
            value = entry.get("callInitiator", self.config.call_initiator)
            if isinstance(value, str) and value.lower() == "user":
                return "user"
            if isinstance(value, str) and value.lower() == "rp":
                return "RP"
            raise InvalidAuthorizationDetails('phoneAuth needs "callInitiator": "user" or "RP"')
        return self.config.call_initiator

    def _visible_text(self, request: StartRequest) -> str | None:
        parts = []
        if self.config.show_client_name and request.client_name:
            parts.append(request.client_name)
        if request.binding_message:
            parts.append(request.binding_message)
        return _visible_data("\n\n".join(parts)) if parts else None

    # --- poll ---------------------------------------------------------------

    async def poll(self, session: dict[str, Any]) -> PollResult:
        """Collect the order once (transient errors retried); map the answer to an outcome."""
        order_ref = session.get("orderRef")
        if not isinstance(order_ref, str) or not order_ref:
            return Failed(reason="the BankID session has no orderRef")
        try:
            with translated(self._log, "collect", order_ref=order_ref):
                answer = await self._retried(lambda: self._client.collect(order_ref), is_transient)
        except MalformedAnswer as exc:
            return self._malformed(session, order_ref, exc)
        except UpstreamRejected as exc:
            return Failed(reason=exc.description)
        result = self._outcome(answer, session)
        if isinstance(result, Pending) and "malformed" in session:
            kept = {k: v for k, v in session.items() if k != "malformed"}
            result = Pending(hint=result.hint, poll_after=result.poll_after, session=kept)
        if isinstance(result, Approved) and not _same_person(session, result.identity):
            result = identity_mismatch(self._log, order_ref=order_ref, check="personal_number")
        # A pending order is collected every poll_interval: debug, or 10k pending
        # requests would write 5k lines a second. Outcomes are logged at info.
        emit = self._log.debug if isinstance(result, Pending) else self._log.info
        emit(
            "bankid_collected",
            order_ref=order_ref,
            status=answer.status,
            hint_code=answer.hint_code,
        )
        return result

    def _malformed(
        self, session: dict[str, Any], order_ref: str, exc: MalformedAnswer
    ) -> Pending | Failed:
        """Count collects in a row that were not the documented JSON; fail at the limit.

        A malformed answer (wrong content type, unreadable JSON) is not an outage:
        retrying it until the request expires would leave the client pending for nothing.
        """
        count = int(session.get("malformed", 0)) + 1
        self._log.warning(
            "bankid_collect_malformed",
            order_ref=order_ref,
            count=count,
            error=exc.description[:200],
        )
        if count >= MAX_MALFORMED_COLLECTS:
            return Failed(reason=f"BankID answered {count} malformed collects in a row")
        return Pending(
            hint="malformed",
            poll_after=self.config.poll_interval,
            session={**session, "malformed": count},
        )

    async def _retried(self, call: Callable[[], Awaitable[T]], predicate: Predicate) -> T:
        """``call()`` with ``http.retries`` tries; the first outside tenacity (hot path)."""
        return await call_with_retries(
            call, self.config.http.retries, predicate=predicate, sleep=self._sleep
        )

    def _outcome(self, answer: CollectResponse, session: dict[str, Any]) -> PollResult:
        status = answer.status.lower()
        if status == "pending":
            return Pending(hint=answer.hint_code, poll_after=self.config.poll_interval)
        if status == "complete":
            if answer.completion_data is None:
                return Failed(reason="BankID reported completion without completionData")
            return self._approved(answer.completion_data, session.get("sign"))
        if status == "failed":
            hint = answer.hint_code or ""
            known = _FAILURES.get(hint.lower())
            if known is not None:
                return known
            return Failed(reason=f"Unknown BankID error; please try again ({safe_code(hint)}).")
        return Failed(reason=f"BankID answered an unknown status ({safe_code(answer.status)}).")

    def _approved(self, data: CompletionData, sign: dict[str, Any] | None) -> Approved | Failed:
        user = data.user
        pnr = user.personal_number
        if not _TWELVE_DIGITS.fullmatch(pnr):
            return Failed(reason="BankID completed without a valid personal number")
        evidence = None
        if sign is not None:
            at = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            checked = verify(data, sign, self._roots, at)
            if isinstance(checked, str):
                self._log.warning("bankid_signature_rejected", security_event=True, problem=checked)
                return Failed(reason=checked)
            evidence = checked
        claims: dict[str, Any] = {}
        if user.name:
            claims["name"] = user.name
        if user.given_name:
            claims["given_name"] = user.given_name
        if user.surname:
            claims["family_name"] = user.surname
        born = birthdate(pnr)
        if born is not None:
            claims["birthdate"] = born.isoformat()
        return Approved(
            identity=Identity(
                scheme="se-pnr",
                subject=pnr,
                national_id=pnr,
                country="SE",
                claims=claims,
                acr=self.config.acr,
                amr=self.config.amr,
                auth_time=int(self._clock()),
                evidence=evidence,
            )
        )

    # --- cancel / close -----------------------------------------------------

    async def cancel(self, session: dict[str, Any]) -> None:
        """Cancel the order, best effort: errors are logged, never raised."""
        order_ref = session.get("orderRef")
        if not isinstance(order_ref, str) or not order_ref:
            return
        log = self._log.bind(order_ref=order_ref)
        cancelled = await best_effort(
            lambda: self._retried(lambda: self._client.cancel(order_ref), is_transient),
            log=log,
            event="bankid_cancel",
            not_pending=not_pending,
        )
        if cancelled:
            log.info("bankid_order_cancelled")

    async def aclose(self) -> None:
        """Close the HTTP client, best effort."""
        await best_effort(self._client.aclose, log=self._log, event="bankid_close")
