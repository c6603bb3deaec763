"""The Freja eID connector: CIBA requests to Freja eID authentications.

``start`` sends ``initAuthentication`` (userInfoType from the login hint, minimum
registration level from the config raised by acr_values), ``poll`` reads
``getOneResult`` at Freja's pace and verifies the signed ``details`` of an approval,
``cancel`` cancels. README.md documents the config and every mapping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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
    InvalidHint,
    LoginHint,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UpstreamRejected,
    best_effort,
    build_client,
    call_with_retries,
    identity_mismatch,
    never_sent,
)
from ciba_gateway_freja.client import FrejaClient
from ciba_gateway_freja.details import (
    DetailsError,
    Expected,
    TrustStore,
    VerifiedApproval,
    verify_details,
)
from ciba_gateway_freja.errors import idempotent_retryable, not_pending, translated
from ciba_gateway_freja.signature import SignPlan, evidence, plan
from ciba_gateway_freja.wire import (
    LEVELS,
    Attribute,
    AttributeRequest,
    AuthResult,
    InitAuthRequest,
    InitSignRequest,
    Level,
    decode_ssn_user_info,
    encode_ssn_user_info,
    level_rank,
)

__all__ = ["Config", "FrejaConnector", "LevelAcrs", "TrustedCertConfig"]

Sleep = Callable[[float], Awaitable[None]]
Predicate = Callable[[BaseException], bool]
T = TypeVar("T")

DEFAULT_ATTRIBUTES: tuple[Attribute, ...] = (
    "BASIC_USER_INFO",
    "SSN",
    "DATE_OF_BIRTH",
    "EMAIL_ADDRESS",
    "ALL_PHONE_NUMBERS",
    "REGISTRATION_LEVEL",
    "RELYING_PARTY_USER_ID",
)
"""What is asked for unless the config says otherwise (README.md, "Identity")."""

DEFAULT_SSN_SCHEMES: dict[str, str] = {
    "SE": "se-pnr",
    "NO": "no-fnr",
    "DK": "dk-cpr",
    "FI": "fi-hetu",
}
"""Identity schemes per SSN country; ``se-pnr`` is the BankID connector's scheme too."""


class TrustedCertConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A trusted signing certificate with the ``kid`` a JWS header may name it by."""

    cert: Annotated[str, Meta(min_length=1)]
    """A PEM file path or an inline PEM."""
    kid: Annotated[str, Meta(min_length=1)] | None = None


class LevelAcrs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``acr`` of an identity at each registration level."""

    BASIC: str = "urn:grn:authn:se:frejaid:basic"
    EXTENDED: str = "urn:grn:authn:se:frejaid:extended"
    PLUS: str = "urn:grn:authn:se:frejaid:plus"

    def for_level(self, level: Level) -> str:
        """The acr of ``level``."""
        return str(getattr(self, level))


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``freja`` connector's settings in a tenant's YAML (documented in README.md)."""

    base_url: Annotated[str, Meta(pattern=r"^https?://")]
    """Service root, e.g. ``https://services.test.frejaeid.com``."""
    trusted_certs: Annotated[tuple[str | TrustedCertConfig, ...], Meta(min_length=1)]
    """Freja's JWS signing certificate(s): PEM paths, inline PEMs or ``{cert, kid}``."""
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    """Timeouts, mTLS (the RP certificate, Freja's pinned root) and retry attempts."""
    relying_party_id: Annotated[str, Meta(min_length=1)] | None = None
    """Sent as ``&relyingPartyId=`` by integrator RPs acting for another RP."""
    min_registration_level: Level = "EXTENDED"
    attributes_to_return: tuple[Attribute, ...] = DEFAULT_ATTRIBUTES
    acr_levels: dict[str, Level] = msgspec.field(default_factory=dict)
    """Requested acr -> minimum registration level (adds to the inverse of ``level_acrs``)."""
    level_acrs: LevelAcrs = msgspec.field(default_factory=LevelAcrs)
    amr: tuple[str, ...] = ("freja",)
    user_confirmation_method: Literal["DEFAULT", "DEFAULT_AND_FACE"] | None = None
    """``DEFAULT_AND_FACE`` makes Freja require a face scan and adds ``face`` to amr."""
    poll_interval: Annotated[float, Meta(ge=1.0, le=60.0)] = 3.0
    """Seconds between two getOneResult calls (Freja's client: 3, allowed 1-60)."""
    default_country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] = "SE"
    """Country of an ``ssn`` hint that names none."""
    ssn_schemes: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_SSN_SCHEMES))
    """Identity scheme per SSN country; others get ``freja-ssn-<cc>``."""
    max_result_age: Annotated[float, Meta(ge=10.0, le=3600.0)] = 300.0
    """Seconds an approval's signed timestamp may lie in the past."""
    clock_skew: Annotated[float, Meta(ge=0.0, le=300.0)] = 30.0
    sign_title: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    """``title`` of a signature request (transaction approval); None sends none."""
    sign_text_limit: Annotated[int, Meta(ge=64, le=100_000)] = 4096
    """Longest approval text sent to initSignature (characters); longer is refused."""
    """Seconds an approval's signed timestamp may lie in the future."""


_PENDING = frozenset({"STARTED", "DELIVERED_TO_MOBILE"})
_FINAL: dict[str, Denied | Expired] = {
    "CANCELED": Denied(reason="The user declined in the Freja eID app (CANCELED)."),
    "REJECTED": Denied(
        reason="Freja eID rejected the authentication for security reasons (REJECTED)."
    ),
    "RP_CANCELED": Expired(reason="The Freja eID authentication was cancelled (RP_CANCELED)."),
    "EXPIRED": Expired(reason="The user did not answer in the Freja eID app in time (EXPIRED)."),
}
_MIN_SIGN_EXPIRY = 121.0
"""Seconds: Freja refuses a signature expiry earlier than now + 2 minutes."""


def _sign_plan(session: dict[str, Any]) -> SignPlan | None:
    """The sign plan of a signature session; None for an authentication."""
    raw = session.get("sign")
    return msgspec.convert(raw, SignPlan) if raw is not None else None


def _same_person(expected: Expected, identity: Identity) -> bool:
    """For an SSN request, the identity's national id is the SSN asked for.

    ``verify_details`` already checked the signed ``userInfo``; this covers the
    signed SSN attribute, which becomes the subject when present.
    """
    if expected.user_info_type != "SSN":
        return True
    country, ssn = decode_ssn_user_info(expected.user_info)
    return identity.national_id == ssn and identity.country == country.upper()


class FrejaConnector(BaseConnector):
    """Authenticates people with Freja eID by personal number, email address or phone number.

    ``transport`` replaces the network (tests run it against the simulator) and
    ``sleep`` the wait between retries.
    """

    Config: ClassVar[type[Config]] = Config
    login_hint_kinds: ClassVar[frozenset[str]] = frozenset({"ssn", "email", "tel"})
    authorization_details_types: ClassVar[frozenset[str]] = frozenset(
        {"payment_initiation", "approval"}
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
        self._trust = TrustStore.load(
            (entry, None) if isinstance(entry, str) else (entry.cert, entry.kid)
            for entry in config.trusted_certs
        )
        levels = config.level_acrs
        self._acr_levels: dict[str, Level] = {
            **{levels.for_level(level): level for level in LEVELS},
            **config.acr_levels,
        }
        amr = config.amr
        if config.user_confirmation_method == "DEFAULT_AND_FACE" and "face" not in amr:
            amr = (*amr, "face")
        self._amr = amr
        self._client = FrejaClient(
            build_client(config.base_url, config.http, transport=transport),
            config.relying_party_id,
        )
        self._log = structlog.get_logger("ciba_gateway_freja").bind(
            connector="freja", tenant=deps.tenant_id, instance=deps.instance_name
        )

    # --- start --------------------------------------------------------------

    async def start(self, request: StartRequest) -> Started:
        """Start an authentication for the hinted user; refuse with a ConnectorError."""
        user_info_type, user_info = self._user_info(request.login_hint)
        level = self._required_level(request.acr_values)
        body = InitAuthRequest(
            user_info_type=user_info_type,
            user_info=user_info,
            min_registration_level=level,
            attributes_to_return=tuple(
                AttributeRequest(attribute=name) for name in self.config.attributes_to_return
            )
            or None,
            user_confirmation_method=self.config.user_confirmation_method,
        )
        planned = plan(request, limit=self.config.sign_text_limit)
        log = self._log.bind(user_info_type=user_info_type, level=level, sign=bool(planned))

        async def send() -> str:
            if planned is None:
                return (await self._client.init_authentication(body)).auth_ref
            sign_body = InitSignRequest(
                user_info_type=user_info_type,
                user_info=user_info,
                min_registration_level=level,
                title=self.config.sign_title,
                expiry=self._sign_expiry(request.expires_at),
                data_to_sign_type="SIMPLE_UTF8_TEXT",
                data_to_sign=planned[1],
                signature_type="SIMPLE",
                attributes_to_return=body.attributes_to_return,
            )
            return (await self._client.init_signature(sign_body)).sign_ref

        # After a read timeout or a dropped answer Freja may have started the
        # authentication; a second start would cancel both (one active per user).
        with translated(log, "start", user_info_type=user_info_type):
            ref = await self._retried(send, never_sent)
        log.info("freja_auth_started", auth_ref=ref)
        session: dict[str, Any] = {
            "authRef": ref,
            "userInfoType": user_info_type,
            "userInfo": user_info,
            "level": level,
        }
        if planned is not None:
            session["sign"] = msgspec.to_builtins(planned[0])
        return Started(session=session, poll_after=self.config.poll_interval)

    def _sign_expiry(self, expires_at: float) -> int | None:
        """``expiry`` (epoch ms) of a signature: the request's, when Freja accepts it."""
        if expires_at < self._clock() + _MIN_SIGN_EXPIRY:
            return None  # Freja's default, now + 2 minutes
        return int(expires_at * 1000)

    def _user_info(self, hint: LoginHint) -> tuple[str, str]:
        if hint.kind == "ssn":
            country = (hint.country or self.config.default_country).upper()
            if not (hint.value.isascii() and hint.value.isdigit()):
                raise InvalidHint("Freja eID needs the personal identity number as digits")
            return "SSN", encode_ssn_user_info(country, hint.value)
        if hint.kind == "email":
            return "EMAIL", hint.value
        if hint.kind == "tel":
            return "PHONE", hint.value
        raise InvalidHint(f"Freja eID cannot find users by {hint.kind}")

    def _required_level(self, acr_values: Sequence[str]) -> Level:
        """The highest of the configured minimum and the levels of the requested acrs."""
        level = self.config.min_registration_level
        for acr in acr_values:
            wanted = self._acr_levels.get(acr)
            if wanted is not None and level_rank(wanted) > level_rank(level):
                level = wanted
        return level

    async def _retried(self, call: Callable[[], Awaitable[T]], predicate: Predicate) -> T:
        """``call()`` with ``http.retries`` tries while ``predicate`` allows another."""
        return await call_with_retries(
            call, self.config.http.retries, predicate=predicate, sleep=self._sleep
        )

    # --- poll ---------------------------------------------------------------

    async def poll(self, session: dict[str, Any]) -> PollResult:
        """Read the result once (transient errors retried) and map it to an outcome."""
        auth_ref = session.get("authRef")
        if not isinstance(auth_ref, str) or not auth_ref:
            return Failed(reason="the Freja eID session has no authRef")
        log = self._log.bind(auth_ref=auth_ref)
        get = self._client.get_one_sign_result if "sign" in session else self._client.get_one_result
        try:
            with translated(log, "result"):
                result = await self._retried(lambda: get(auth_ref), idempotent_retryable)
        except UpstreamRejected as exc:
            return Failed(reason=exc.description)
        outcome = self._outcome(result, session, log)
        log.info("freja_result", status=result.status, outcome=type(outcome).__name__)
        return outcome

    def _outcome(self, result: AuthResult, session: dict[str, Any], log: Any) -> PollResult:
        if result.auth_ref != session["authRef"]:
            return Failed(reason="Freja eID answered about another authentication")
        if result.status in _PENDING:
            return Pending(hint=result.status, poll_after=self.config.poll_interval)
        final = _FINAL.get(result.status)
        if final is not None:
            return final
        if result.status != "APPROVED":
            return Failed(reason="Freja eID answered an unknown status")
        return self._approved(result, session, log)

    def _approved(self, result: AuthResult, session: dict[str, Any], log: Any) -> Approved | Failed:
        sign = _sign_plan(session)
        try:
            expected = Expected(
                auth_ref=session["authRef"],
                user_info_type=session["userInfoType"],
                user_info=session["userInfo"],
                min_registration_level=session["level"],
                ref_name="signRef" if sign else "authRef",
                signed_text_sha256=sign.text_sha256 if sign else None,
            )
        except KeyError:
            return Failed(reason="the Freja eID session is incomplete")
        if not result.details:
            log.warning("freja_details_rejected", check="missing")
            return Failed(reason="Freja eID approved without a signed result")
        try:
            verified = verify_details(
                result.details,
                self._trust,
                expected,
                now=self._clock(),
                max_age=self.config.max_result_age,
                clock_skew=self.config.clock_skew,
            )
        except DetailsError as exc:
            if exc.check == "user_info":
                return identity_mismatch(log, check="user_info")
            # Never tokens from an unverified result: the reason names the check only.
            log.warning("freja_details_rejected", check=exc.check, reason=exc.description)
            return Failed(reason=f"the Freja eID result failed verification ({exc.check})")
        identity = self._identity(verified, expected)
        if isinstance(identity, str):
            log.warning("freja_identity_incomplete", problem=identity)
            return Failed(reason=identity)
        if not _same_person(expected, identity):
            return identity_mismatch(log, check="ssn_attribute")
        if sign is not None and verified.user_signature is not None:
            proof = evidence(sign, result.details, verified.user_signature)
            identity = msgspec.structs.replace(identity, evidence=proof)
        return Approved(identity=identity)

    def _identity(self, verified: VerifiedApproval, expected: Expected) -> Identity | str:
        """The Identity of a verified approval, or why there is none."""
        attrs = verified.attributes
        level: Level
        if attrs.registration_level in LEVELS:
            level = attrs.registration_level  # type: ignore[assignment]
        elif verified.min_registration_level in LEVELS:
            level = verified.min_registration_level  # type: ignore[assignment]
        else:
            level = "BASIC"
        if level_rank(level) < level_rank(expected.min_registration_level):
            return "the user's Freja eID registration level is below the one required"

        claims: dict[str, Any] = {}
        if attrs.basic_user_info is not None:
            given, family = attrs.basic_user_info.name, attrs.basic_user_info.surname
            if given:
                claims["given_name"] = given
            if family:
                claims["family_name"] = family
            full = " ".join(part for part in (given, family) if part)
            if full:
                claims["name"] = full
        if attrs.date_of_birth:
            claims["birthdate"] = attrs.date_of_birth
        email = attrs.email_address or next(
            (e.email_address for e in attrs.all_email_addresses or ()), None
        )
        if expected.user_info_type == "EMAIL":
            email = expected.user_info
        if email:
            claims["email"] = email
            claims["email_verified"] = True
        phone = next((p.phone_number for p in attrs.all_phone_numbers or ()), None)
        if expected.user_info_type == "PHONE":
            phone = expected.user_info
        if phone:
            claims["phone_number"] = phone
            claims["phone_number_verified"] = True

        national_id = country = None
        if attrs.ssn is not None:
            national_id, country = attrs.ssn.ssn, attrs.ssn.country.upper()
        elif expected.user_info_type == "SSN":
            # The signed userInfo matched the SSN we sent, so Freja vouches for it.
            country, national_id = decode_ssn_user_info(expected.user_info)
        if national_id is not None and country is not None:
            scheme = self.config.ssn_schemes.get(country, f"freja-ssn-{country.lower()}")
            subject = national_id
        elif attrs.unique_personal_identifier:
            scheme, subject = "freja-upi", attrs.unique_personal_identifier
        elif attrs.relying_party_user_id:
            scheme, subject = "freja-rp-user-id", attrs.relying_party_user_id
        else:
            return (
                "Freja eID returned no stable identifier (ask for SSN, "
                "UNIQUE_PERSONAL_IDENTIFIER or RELYING_PARTY_USER_ID)"
            )
        return Identity(
            scheme=scheme,
            subject=subject,
            claims=claims,
            national_id=national_id,
            country=country,
            acr=self.config.level_acrs.for_level(level),
            amr=self._amr,
            auth_time=verified.timestamp_ms // 1000,
        )

    # --- cancel / close -----------------------------------------------------

    async def cancel(self, session: dict[str, Any]) -> None:
        """Cancel the authentication, best effort: errors are logged, never raised."""
        auth_ref = session.get("authRef")
        if not isinstance(auth_ref, str) or not auth_ref:
            return
        log = self._log.bind(auth_ref=auth_ref)
        cancel = self._client.cancel_signature if "sign" in session else self._client.cancel
        cancelled = await best_effort(
            lambda: self._retried(lambda: cancel(auth_ref), idempotent_retryable),
            log=log,
            event="freja_cancel",
            not_pending=not_pending,
        )
        if cancelled:
            log.info("freja_auth_cancelled")

    async def aclose(self) -> None:
        """Close the HTTP client, best effort."""
        await best_effort(self._client.aclose, log=self._log, event="freja_close")
