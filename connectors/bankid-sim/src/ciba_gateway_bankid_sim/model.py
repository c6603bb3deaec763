"""The orders the BankID simulator holds: start, the clock-driven lifecycle, the phone's view.

Behaviour per order: a persona's ``outcome`` happens ``delay`` seconds after the
start (``ignore``: never, the phone page decides); until then successive collects
show the persona's ``hints`` (default: the usual app progression). A pending order
expires (``expiredTransaction``) after ``order_lifetime``. A number no persona
matches is a person without BankID: ``outstandingTransaction`` until
``startFailed`` after ``start_timeout``. A second order for a person with one
pending fails with ``alreadyInProgress`` and cancels the first (``cancelled``).
Finished orders stay collectable for ``complete_retention`` / ``failed_retention``.

Cost per call is constant, whatever the number of orders held (the gateway's
benchmarks keep 10k orders pending): an order is brought up to date when it is
touched, pending orders are indexed by personal number, and the sweep that
forgets old orders runs at most once a second of the clock. Listings (the phone
page, ``stats``) sweep first, so what they show is exact. A complete order's
``completionData`` (an XML-DSig signature and an OCSP response, about 0.7 ms of
CPU) is made by the first collect that sees it complete, not when it completes:
an order completed by a later start for the same person and never collected
costs nothing (the bc_authorize benchmark starts hundreds a second).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from ciba_gateway_bankid.wire import CompletionData

from ciba_gateway_bankid_sim.completion import completion_data
from ciba_gateway_bankid_sim.phone_page import PersonRow
from ciba_gateway_bankid_sim.pki import SimulatedPki
from ciba_gateway_bankid_sim.settings import Kind, SimulatorSettings, behaviour

__all__ = ["AlreadyInProgress", "Order", "Orders"]

_SWEEP_EVERY = 1.0
"""Clock seconds between two sweeps of the whole order table from the RP API calls."""

_DEFAULT_HINTS: Mapping[str, tuple[str, ...]] = {
    "auth": ("outstandingTransaction", "outstandingTransaction", "started", "started", "userSign"),
    "sign": ("outstandingTransaction", "outstandingTransaction", "started", "started", "userSign"),
    "phone/auth": ("outstandingTransaction", "userCallConfirm", "userSign"),
    "phone/sign": ("outstandingTransaction", "userCallConfirm", "userSign"),
}


class AlreadyInProgress(Exception):
    """The person has a pending order; BankID aborts both it and the new one."""


@dataclass
class Order:
    """One order held by the simulator."""

    order_ref: str
    kind: Kind
    personal_number: str | None
    created_at: float
    text: str | None = None
    """userVisibleData as received, decoded to text."""
    call_initiator: str | None = None
    end_user_ip: str | None = None
    text_format: str | None = None
    """userVisibleDataFormat as received (``simpleMarkdownV1`` or None)."""
    visible_data: str | None = None
    non_visible_data: str | None = None
    """userVisibleData / userNonVisibleData exactly as received (base64)."""
    status: Literal["pending", "complete", "failed"] = "pending"
    hint_code: str = "outstandingTransaction"
    finished_at: float | None = None
    completion: CompletionData | None = None
    """Made by the first collect that sees the order complete (``Orders.collect``)."""
    collects: int = 0


class Orders:
    """The personas' orders and the rules they follow, brought up to date when touched."""

    def __init__(self, settings: SimulatorSettings, *, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.personas = {p.personal_number: p for p in settings.personas}
        self.orders: dict[str, Order] = {}
        self._pending_by_pnr: dict[str, set[str]] = {}
        self._next_sweep = float("-inf")
        self.pki = SimulatedPki()
        """Root, issuing CA, signers and OCSP responder: new for every simulator."""

    def reset(self) -> None:
        """Forget every order."""
        self.orders.clear()
        self._pending_by_pnr.clear()

    def start(self, order: Order) -> None:
        """Hold a new pending order.

        Raises:
            AlreadyInProgress: the person has a pending order (now ``cancelled``).
        """
        now = order.created_at
        self._tidy(now)
        pnr = order.personal_number
        if pnr is not None:
            for ref in list(self._pending_by_pnr.get(pnr, ())):
                running = self._current(ref, now)
                if running is not None and running.status == "pending":
                    self._finish(running, "failed", "cancelled", now)
                    raise AlreadyInProgress
        self.orders[order.order_ref] = order
        if pnr is not None:
            self._pending_by_pnr.setdefault(pnr, set()).add(order.order_ref)

    def new(self, kind: Kind, pnr: str | None, **fields: str | None) -> Order:
        """A fresh order of ``kind`` for ``pnr``, created now (not held yet: ``start`` it)."""
        return Order(
            order_ref=str(uuid.uuid4()),
            kind=kind,
            personal_number=pnr,
            created_at=self.clock(),
            **fields,  # type: ignore[arg-type]
        )

    def collect(self, order_ref: str) -> Order | None:
        """The order as a collect sees it (its next pending hint); None when unknown."""
        now = self.clock()
        self._tidy(now)
        order = self._current(order_ref, now)
        if order is not None and order.status == "pending":
            order.hint_code = self._pending_hint(order)
            order.collects += 1
        elif order is not None and order.status == "complete":
            self._completion(order)
        return order

    def completion(self, order_ref: str) -> CompletionData | None:
        """The completionData a collect of the order would carry now; None unless complete."""
        order = self._current(order_ref, self.clock())
        if order is None or order.status != "complete":
            return None
        return self._completion(order)

    def cancel(self, order_ref: str) -> bool:
        """The relying party cancels a pending order (it is forgotten); False if none."""
        now = self.clock()
        self._tidy(now)
        order = self._current(order_ref, now)
        if order is None or order.status != "pending":
            return False
        self._unindex(order)
        del self.orders[order.order_ref]
        return True

    def _current(self, order_ref: str, now: float) -> Order | None:
        """The order brought up to ``now``; None when unknown or past its retention."""
        order = self.orders.get(order_ref)
        if order is None:
            return None
        self._advance(order, now)
        if self._expired(order, now):
            del self.orders[order_ref]
            return None
        return order

    def all(self) -> list[Order]:
        """Every order held, each up to date (a full sweep)."""
        self._housekeeping(self.clock())
        return list(self.orders.values())

    # --- the phone --------------------------------------------------------------

    def pending(self, pnr: str) -> list[Order]:
        """The person's pending orders, oldest first."""
        return [o for o in self.all() if o.personal_number == pnr and o.status == "pending"]

    def decide(self, pnr: str, order_ref: str, *, approve: bool) -> bool:
        """Approve (complete) or deny (userCancel) a pending order; False if it is not pending."""
        now = self.clock()
        self._housekeeping(now)
        order = self.orders.get(order_ref)
        if order is None or order.personal_number != pnr or order.status != "pending":
            return False
        if approve:
            self._complete(order, now)
        else:
            self._finish(order, "failed", "userCancel", now)
        return True

    def people(self) -> list[PersonRow]:
        """Personas and other numbers with pending orders, for the phone index."""
        counts = Counter(
            o.personal_number for o in self.all() if o.status == "pending" and o.personal_number
        )
        rows = [
            PersonRow(p.personal_number, p.full_name, behaviour(p), counts[p.personal_number])
            for p in self.settings.personas
        ]
        rows += [
            PersonRow(
                pnr, "Unknown person (no BankID)", "no persona: startFailed after the timeout", n
            )
            for pnr, n in sorted(counts.items())
            if pnr not in self.personas
        ]
        return rows

    # --- order life -----------------------------------------------------------

    def _housekeeping(self, now: float) -> None:
        """Apply due transitions and forget orders whose collect window has passed."""
        for order in list(self.orders.values()):
            self._advance(order, now)
            if self._expired(order, now):
                del self.orders[order.order_ref]
        self._next_sweep = now + _SWEEP_EVERY

    def _tidy(self, now: float) -> None:
        """The sweep of ``_housekeeping``, at most once per ``_SWEEP_EVERY``."""
        if now >= self._next_sweep:
            self._housekeeping(now)

    def _expired(self, order: Order, now: float) -> bool:
        if order.finished_at is None:
            return False
        keep = (
            self.settings.complete_retention
            if order.status == "complete"
            else self.settings.failed_retention
        )
        return now >= order.finished_at + keep

    def _unindex(self, order: Order) -> None:
        refs = self._pending_by_pnr.get(order.personal_number or "")
        if refs is not None:
            refs.discard(order.order_ref)
            if not refs:
                del self._pending_by_pnr[order.personal_number or ""]

    def _advance(self, order: Order, now: float) -> None:
        if order.status != "pending":
            return
        persona = self.personas.get(order.personal_number or "")
        if persona is None:
            deadline = order.created_at + self.settings.start_timeout
            if now >= deadline:
                self._finish(order, "failed", "startFailed", deadline)
            return
        expiry = order.created_at + self.settings.order_lifetime
        due = order.created_at + persona.delay
        if persona.outcome != "ignore" and due < expiry and now >= due:
            self._apply(order, persona.outcome, due)
        elif now >= expiry:
            self._finish(order, "failed", "expiredTransaction", expiry)

    def _apply(self, order: Order, outcome: str, at: float) -> None:
        if outcome == "approve":
            self._complete(order, at)
        elif outcome == "deny":
            self._finish(order, "failed", "userCancel", at)
        else:
            self._finish(order, "failed", outcome, at)

    def _finish(
        self, order: Order, status: Literal["complete", "failed"], hint: str, at: float
    ) -> None:
        if order.status == "pending":
            self._unindex(order)
        order.status = status
        order.hint_code = hint
        order.finished_at = at

    def _complete(self, order: Order, at: float) -> None:
        self._finish(order, "complete", "", at)

    def _completion(self, order: Order) -> CompletionData:
        """The order's completionData, signed on first use and then kept (collects agree)."""
        if order.completion is None:
            order.completion = completion_data(
                kind=order.kind,
                personal_number=order.personal_number,
                persona=self.personas.get(order.personal_number or "190001019999"),
                visible_data=order.visible_data,
                non_visible_data=order.non_visible_data,
                end_user_ip=order.end_user_ip,
                pki=self.pki,
            )
        return order.completion

    def _pending_hint(self, order: Order) -> str:
        persona = self.personas.get(order.personal_number or "")
        if persona is None:
            return "outstandingTransaction"
        hints = persona.hints or _DEFAULT_HINTS[order.kind]
        return hints[min(order.collects, len(hints) - 1)]
