"""Ping and push delivery of terminal outcomes (CIBA Core 1.0 sections 10.2 and 10.3).

A notification is due work stored with its request (``notify_state = "due"``,
``next_poll_at`` = when to try), so it is leased by the same background
driver, survives restarts and is attempted by one replica at a time. Each
attempt POSTs JSON with ``Authorization: Bearer <client_notification_token>``:

- ping: ``{"auth_req_id": ...}``; the client then redeems at the token endpoint;
- push: the token response (minted once, kept sealed with the request so every
  retry sends the same tokens) or ``{auth_req_id, error, error_description}``.

A 2xx ends delivery (``delivered``); it is recorded at once, so a delivered
notification is not sent again (a crash in the instant between the 2xx and that
write is the only window for a repeat). The record is written even when the
request changed meanwhile (a ping client that redeemed before it answered the
ping): the engine re-reads and re-applies it (its lost-race table). Timeouts,
connection errors and 5xx are retried with exponential backoff (tenacity's
``wait_exponential``), bounded by ``max_attempts``; any other status, including
redirects, which are never followed, stops delivery (``failed``), as does a
notification that cannot be built any more (client or tenant removed, sealed
payload unreadable after a reload): logged as ``notification_dropped``. A
request that expired without an outcome is not notified: the client knows its
own expiry. Logs of attempts never contain tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import msgspec
import structlog
from tenacity import wait_exponential

from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.metrics import Metrics
from ciba_gateway.tracing import NO_TRACING, Tracing

__all__ = ["Delivery", "DeliveryPolicy", "Notifier", "PushPayloadBuilder"]

log = structlog.get_logger("ciba_gateway.notify")

PushPayloadBuilder = Callable[[AuthRequest], Awaitable[bytes]]
"""For an approved push request: mint its tokens and return the sealed token
response (the engine stores it with the approved -> issued move before the
first attempt)."""

PayloadOpener = Callable[[AuthRequest], bytes]
"""Returns the stored (sealed) push payload of an issued request in clear."""


class _Attempt:
    """The minimal retry state tenacity's wait strategies read."""

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt came to; the engine turns it into a transition."""

    state: Literal["delivered", "retry", "failed"]
    retry_at: float | None = None


_DELIVERED = Delivery("delivered")
_FAILED = Delivery("failed")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Timeouts and retry bounds for notification delivery."""

    timeout: float = 5.0
    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts (exponential, capped)."""
        wait = wait_exponential(multiplier=self.initial_wait, max=self.max_wait)
        return float(wait(_Attempt(attempts)))  # type: ignore[arg-type]


def _log_fields(request: AuthRequest) -> dict[str, Any]:
    """What every delivery log line carries (never the token or the payload)."""
    return {
        "tenant": request.tenant_id,
        "client_id": request.client_id,
        "mode": request.delivery_mode,
        "attempt": request.notify_attempts + 1,
    }


class Notifier:
    """Delivers due notifications; one instance per gateway process."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint_for: Callable[[AuthRequest], str | None],
        build_push: PushPayloadBuilder,
        open_push: PayloadOpener,
        policy: DeliveryPolicy | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.http = http
        self.tracing = tracing
        self.endpoint_for = endpoint_for
        self.build_push = build_push
        self.open_push = open_push
        self.policy = policy or DeliveryPolicy()
        self.metrics = metrics or Metrics()

    def _count(self, request: AuthRequest, outcome: str) -> None:
        self.metrics.notifications.labels(request.tenant_id, request.delivery_mode, outcome).inc()

    def _payload(self, request: AuthRequest) -> bytes:
        if request.delivery_mode == "ping":
            return msgspec.json.encode({"auth_req_id": request.auth_req_id})
        if request.status is Status.ISSUED:
            return self.open_push(request)
        body: dict[str, Any] = {"auth_req_id": request.auth_req_id, "error": request.error}
        if request.error_description:
            body["error_description"] = request.error_description
        return msgspec.json.encode(body)

    async def attempt(self, request: AuthRequest, now: float) -> Delivery:
        """Try once: delivered, retry later, or failed for good (one span when traced)."""
        if not self.tracing.enabled:
            return await self._attempt(request, now)
        attributes = {
            "ciba.tenant": request.tenant_id,
            "ciba.client_id": request.client_id,
            "ciba.delivery_mode": request.delivery_mode,
            "ciba.notification.attempt": request.notify_attempts + 1,
        }
        name = f"notification.{request.delivery_mode}"
        with self.tracing.span(name, attributes=attributes) as span:
            delivery = await self._attempt(request, now)
            span.set("ciba.outcome", delivery.state)
            if delivery.state != "delivered":
                span.fail(delivery.state)
            return delivery

    async def _attempt(self, request: AuthRequest, now: float) -> Delivery:
        endpoint = self.endpoint_for(request)
        fields = _log_fields(request)
        if endpoint is None or not request.client_notification_token:
            return self.drop(request, "no endpoint or token")
        try:
            payload = self._payload(request)
        except Exception as exc:
            # The stored push payload cannot be opened any more (tenant or its subject
            # salt changed by a reload): retrying cannot help, so stop instead of looping.
            return self.drop(request, type(exc).__name__)
        try:
            response = await self.http.post(
                endpoint,
                content=payload,
                headers={
                    "Authorization": f"Bearer {request.client_notification_token}",
                    "Content-Type": "application/json",
                },
                timeout=self.policy.timeout,
            )
        except httpx.HTTPError as exc:
            log.warning("notification_attempt", outcome="error", error=type(exc).__name__, **fields)
            self._count(request, "error")
            return self.failed_attempt(request, now)
        status = response.status_code
        if 200 <= status < 300:
            log.info("notification_attempt", outcome="delivered", status=status, **fields)
            self._count(request, "delivered")
            return _DELIVERED
        if status >= 500:
            log.warning("notification_attempt", outcome="retry", status=status, **fields)
            self._count(request, "server_error")
            return self.failed_attempt(request, now)
        log.warning("notification_attempt", outcome="refused", status=status, **fields)
        self._count(request, "refused")
        return _FAILED

    def drop(self, request: AuthRequest, reason: str) -> Delivery:
        """Give up on a notification that cannot be made at all.

        Logged as ``notification_dropped`` and counted as ``dropped``; no attempt is made.
        """
        log.warning("notification_dropped", reason=reason, **_log_fields(request))
        self._count(request, "dropped")
        return _FAILED

    def failed_attempt(self, request: AuthRequest, now: float) -> Delivery:
        """An attempt that failed in a way worth retrying: retry later, or give up."""
        attempts = request.notify_attempts + 1
        if attempts >= self.policy.max_attempts:
            log.warning("notification_gave_up", tenant=request.tenant_id, attempts=attempts)
            return _FAILED
        return Delivery("retry", now + self.policy.delay(attempts))
