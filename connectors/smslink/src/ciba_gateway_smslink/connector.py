"""The SMS link connector: text a one-time link, let the person decide on a web page.

``start`` checks the number (prefix allow-list, directory, rate limits), stores
the hash of a fresh link and sends the text; the gateway does not poll. The
page at ``GET /l/{token}`` shows who asks and why; its form POSTs the decision,
which consumes the link and resolves the request. ``cancel`` (request expired)
deletes the link. README.md documents the config and the security model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

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
    ConnectorError,
    Denied,
    ErrorBoundary,
    Evidence,
    Failed,
    Identity,
    InvalidHint,
    Outcome,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UpstreamUnavailable,
    UserBusy,
    UserNotFound,
    best_effort,
    details,
    identity_mismatch,
    mask_phone,
)
from ciba_gateway_smslink import page
from ciba_gateway_smslink.config import Config
from ciba_gateway_smslink.directory import DirectoryClient
from ciba_gateway_smslink.links import (
    LinkRecord,
    csrf_token,
    link_key,
    new_link,
    token_hash,
    used_key,
    valid_csrf,
    well_formed,
)
from ciba_gateway_smslink.senders import (
    Sender,
    SenderDeps,
    Sleep,
    SmsMessage,
    build_sender,
)

__all__ = ["SmsLinkConnector"]

log = structlog.get_logger("ciba_gateway_smslink")

NO_POLL = 3600.0
"""``poll`` is never needed (the page resolves); if called anyway, come back much later."""

USED_GRACE = 600.0
"""Seconds after a link's expiry during which a second open still says "already used"."""

_record_decoder = msgspec.json.Decoder(LinkRecord)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class _SenderErrors(ErrorBoundary):
    """The sender plugin's contract: it raises ConnectorErrors; anything else is an outage."""

    __slots__ = ()

    def translate(self, exc: Exception) -> ConnectorError | None:
        return UpstreamUnavailable("the text message could not be sent")


_sender_errors = _SenderErrors()


def _number_hash(number: str) -> str:
    # A hash keeps raw numbers out of store keys and values (dumps, redis MONITOR).
    return hashlib.sha256(number.encode()).hexdigest()


def _same_person(record: LinkRecord, pending: StartRequest) -> bool:
    """The link was texted to the number the request names (so its holder is that person).

    A record without ``sent_to`` (written before this check) does not match.
    """
    return record.sent_to is not None and record.sent_to == _number_hash(pending.login_hint.value)


class SmsLinkConnector(BaseConnector):
    """Authenticates possession of a phone number with a one-time link sent by SMS."""

    Config = Config
    login_hint_kinds: ClassVar[frozenset[str]] = frozenset({"tel"})
    authorization_details_types: ClassVar[frozenset[str]] = details.TYPED_DETAILS

    def __init__(
        self,
        config: Config,
        deps: ConnectorDeps,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config
        self.deps = deps
        self.sender: Sender = build_sender(
            config.sender, SenderDeps(transport=transport, sleep=sleep)
        )
        self.directory = DirectoryClient(config.directory, transport=transport, sleep=sleep)
        base = urlsplit(deps.base_url)
        self._origin = f"{base.scheme}://{base.netloc}"
        if base.scheme != "https" and base.hostname not in _LOOPBACK:
            log.warning("smslink_plain_http_links", tenant=deps.tenant_id)

    # --- the CIBA side ----------------------------------------------------

    async def start(self, request: StartRequest) -> Started:
        hint = request.login_hint
        if hint.kind != "tel":
            raise InvalidHint("this method needs a login_hint of the form tel:+<E.164 number>")
        number = hint.value
        prefixes = self.config.allowed_prefixes
        if prefixes and not number.startswith(prefixes):
            raise InvalidHint("phone numbers of this country or range are not served here")
        known = await self.directory.lookup(number)
        if known is None:
            raise UserNotFound("this phone number is not registered here")
        await self._check_rate(request.client_id, number)

        token, secret = new_link()
        digest = token_hash(token)
        ttl = max(request.expires_at - self.deps.clock(), 1.0)
        record = LinkRecord(
            ref=request.ref,
            secret=secret,
            expires_at=request.expires_at,
            name=known.name,
            sent_to=_number_hash(number),
        )
        await self.deps.state.put(link_key(digest), msgspec.json.encode(record), ttl)
        link = f"{self.deps.base_url}/l/{token}"
        message = SmsMessage(
            to=number,
            text=self.config.message_template.format(
                client_name=request.client_name,
                binding_message=request.binding_message or self.config.default_binding_message,
                link=link,
            ),
            link=link,
            reference=digest[:16],
        )
        try:
            with _sender_errors:
                receipt = await self.sender.send(message)
        except ConnectorError as exc:
            # No text went out (as far as we know): leave no usable link behind.
            await self.deps.state.take(link_key(digest))
            log.warning(
                "sms_send_failed",
                tenant=self.deps.tenant_id,
                client_id=request.client_id,
                to=mask_phone(number),
                reference=message.reference,
                error=type(exc).__name__,
            )
            raise
        log.info(
            "sms_link_sent",
            tenant=self.deps.tenant_id,
            client_id=request.client_id,
            to=mask_phone(number),
            reference=message.reference,
            provider_id=receipt.provider_id,
        )
        return Started(session={"link": digest}, poll_after=None)

    async def _check_rate(self, client_id: str, number: str) -> None:
        limits = self.config.rate_limit
        if limits.per_number is not None:
            key = "rate:number:" + _number_hash(number)
            if await self.deps.state.incr(key, limits.window) > limits.per_number:
                raise UserBusy(
                    "too many links were sent to this phone number recently; try again later"
                )
        if limits.per_client is not None:
            key = f"rate:client:{client_id}"
            if await self.deps.state.incr(key, limits.window) > limits.per_client:
                raise UpstreamUnavailable(
                    "this client has sent too many SMS links recently; try again later"
                )

    async def poll(self, session: dict[str, Any]) -> PollResult:
        return Pending(poll_after=NO_POLL)

    async def cancel(self, session: dict[str, Any]) -> None:
        """Delete the link (best effort): an open after the request expired finds nothing."""
        digest = session.get("link")
        if isinstance(digest, str):
            await best_effort(
                lambda: self.deps.state.take(link_key(digest)),
                log=log.bind(tenant=self.deps.tenant_id),
                event="smslink_cancel",
            )

    async def aclose(self) -> None:
        """Close the sender and the directory client, each best effort."""
        closing = log.bind(tenant=self.deps.tenant_id)
        await best_effort(self.sender.aclose, log=closing, event="smslink_sender_close")
        await best_effort(self.directory.aclose, log=closing, event="smslink_directory_close")

    # --- the page ---------------------------------------------------------

    def routes(self) -> Sequence[CallbackRoute]:
        return (
            CallbackRoute(path="/l/{token}", methods=("GET",), handler=self.show),
            CallbackRoute(path="/l/{token}", methods=("POST",), handler=self.decide),
        )

    async def _open(self, token: str) -> tuple[str, LinkRecord | None, StartRequest | None]:
        """The link's hash, its record and its pending request (None when not usable)."""
        if not well_formed(token):
            return "", None, None
        digest = token_hash(token)
        raw = await self.deps.state.get(link_key(digest))
        if raw is None:
            return digest, None, None
        record = _record_decoder.decode(raw)
        return digest, record, await self.deps.lookup(record.ref)

    async def _gone(self, digest: str) -> CallbackResponse:
        if digest and await self.deps.state.get(used_key(digest)) is not None:
            return page.already_used()
        return page.not_found()

    async def show(self, request: CallbackRequest) -> CallbackResponse:
        """GET: the confirmation page. Side-effect free (link previewers fetch it too)."""
        digest, record, pending = await self._open(request.path_params.get("token", ""))
        if record is None:
            return await self._gone(digest)
        if pending is None:
            return page.not_found()
        return page.approval_page(
            client_name=pending.client_name,
            binding_message=pending.binding_message,
            masked_number=mask_phone(pending.login_hint.value),
            csrf=csrf_token(record, digest),
            sections=tuple(details.sections(pending.authorization_details, None)),
        )

    def _same_origin(self, request: CallbackRequest) -> bool:
        """Fetch-metadata and Origin checks, on top of the form token (defence in depth)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in {"same-origin", "none"}:
            return False
        # Browsers send "Origin: null" for a POST from a no-referrer page.
        origin = request.headers.get("origin")
        return origin is None or origin == "null" or origin == self._origin

    async def decide(self, request: CallbackRequest) -> CallbackResponse:
        """POST: approve or decline; consumes the link exactly once."""
        digest, record, pending = await self._open(request.path_params.get("token", ""))
        if record is None:
            return await self._gone(digest)
        if pending is None:
            return page.not_found()
        if not self._same_origin(request) or not valid_csrf(
            record, digest, request.form.get("csrf")
        ):
            return page.stale_form()
        choice = request.form.get("decision")
        if choice not in {"approve", "decline"}:
            return page.bad_request()
        if await self.deps.state.take(link_key(digest)) is None:
            return await self._gone(digest)  # a concurrent POST won
        now = self.deps.clock()
        await self.deps.state.put(
            used_key(digest), b"1", max(record.expires_at - now, 0.0) + USED_GRACE
        )
        approved = choice == "approve"
        outcome: Outcome = (
            Approved(identity=self._identity(pending, record, now))
            if approved
            else Denied(reason="the person declined on the SMS link page")
        )
        if approved and not _same_person(record, pending):
            outcome = identity_mismatch(
                log.bind(tenant=self.deps.tenant_id, reference=digest[:16]), check="phone_number"
            )
        if not await self.deps.resolve(record.ref, outcome):
            return page.not_found()
        if isinstance(outcome, Failed):
            return page.not_found()
        log.info(
            "sms_link_decided",
            tenant=self.deps.tenant_id,
            client_id=pending.client_id,
            reference=digest[:16],
            outcome="approved" if approved else "denied",
        )
        return page.decided(approved)

    def _identity(self, pending: StartRequest, record: LinkRecord, now: float) -> Identity:
        number = pending.login_hint.value
        claims: dict[str, Any] = {"phone_number": number, "phone_number_verified": True}
        if record.name:
            claims["name"] = record.name
        return Identity(
            scheme="tel",
            subject=number,
            claims=claims,
            acr=self.config.acr,
            amr=("sms",),
            auth_time=int(now),
            evidence=_page_evidence(pending),
        )


def _page_evidence(pending: StartRequest) -> Evidence | None:
    """What the approval page showed, for the audit trail (no upstream signs it)."""
    if not details.typed(pending.authorization_details):
        return None
    shown = details.render(
        pending.authorization_details,
        client_name=pending.client_name,
        binding_message=pending.binding_message,
    )
    return Evidence(
        kind="smslink-page",
        text_sha256=hashlib.sha256(shown.text.encode()).hexdigest(),
        details_digest=details.digest(pending.authorization_details),
        checks=("page shown", "form token", "single use"),
    )
