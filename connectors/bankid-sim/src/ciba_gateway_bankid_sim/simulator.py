"""The BankID simulator without HTTP framework: the RP API, the phone and the controls.

``BankIDSimulator`` puts together the roles: ``RpApi`` (``api.py``) answers relying
parties, ``Orders`` (``model.py``) holds the personas' orders and their timing, with
``completion.py`` and ``pki.py`` for what a complete order reports, and
``FaultRules`` (``faults.py``) decides what goes wrong. ``app.py`` serves it; all
state hangs off one instance, no globals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ciba_gateway_bankid.wire import CompletionData

from ciba_gateway_bankid_sim.api import Reply, RpApi, text_or_base64
from ciba_gateway_bankid_sim.faults import FaultRules, Rule
from ciba_gateway_bankid_sim.model import Order, Orders
from ciba_gateway_bankid_sim.phone_page import PersonRow
from ciba_gateway_bankid_sim.pki import SimulatedPki
from ciba_gateway_bankid_sim.settings import FaultControl, Persona, SimulatorSettings

__all__ = ["BankIDSimulator"]


class BankIDSimulator:
    """The simulated upstream: orders, personas, faults and call counters."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.model = Orders(settings, clock=clock)
        self.fault_rules = FaultRules(settings.personas)
        self.api = RpApi(self.model, self.fault_rules, sleep=sleep)

    @property
    def personas(self) -> dict[str, Persona]:
        """The personas by personal number."""
        return self.model.personas

    @property
    def orders(self) -> dict[str, Order]:
        """The orders held, by ``orderRef``."""
        return self.model.orders

    @property
    def calls(self) -> dict[str, int]:
        """RP API calls per endpoint."""
        return self.api.calls

    @property
    def faults(self) -> dict[str, Rule]:
        """The fault rules in force, by personal number (``*``: every call)."""
        return self.fault_rules.rules

    @property
    def pki(self) -> SimulatedPki:
        """Root, issuing CA, signers and OCSP responder: new for every simulator."""
        return self.model.pki

    async def handle(
        self, endpoint: str, method: str, content_type: str | None, body: bytes
    ) -> Reply:
        """Answer one RP API call (see ``RpApi.handle``)."""
        return await self.api.handle(endpoint, method, content_type, body)

    # --- the phone --------------------------------------------------------------

    def pending(self, pnr: str) -> list[Order]:
        """The person's pending orders, oldest first."""
        return self.model.pending(pnr)

    def decide(self, pnr: str, order_ref: str, *, approve: bool) -> bool:
        """Approve (complete) or deny (userCancel) a pending order; False if it is not pending."""
        return self.model.decide(pnr, order_ref, approve=approve)

    def completion(self, order_ref: str) -> CompletionData | None:
        """The completionData of a complete order (made now if no collect made it yet)."""
        return self.model.completion(order_ref)

    def people(self) -> list[PersonRow]:
        """Personas and other numbers with pending orders, for the phone index."""
        return self.model.people()

    # --- controls ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget orders, counters and runtime faults; personas' own faults apply again."""
        self.model.reset()
        self.api.calls.clear()
        self.fault_rules.reset()

    def set_fault(self, control: FaultControl) -> None:
        """Install (or with fault none and no latency, remove) a fault rule."""
        self.fault_rules.set(control)

    def stats(self) -> dict[str, Any]:
        """Call counters and orders, for tests and curious humans."""
        return {
            "calls": dict(self.calls),
            "orders": [
                {
                    "orderRef": o.order_ref,
                    "kind": o.kind,
                    "personalNumber": o.personal_number,
                    "status": o.status,
                    "hintCode": o.hint_code,
                    "text": o.text,
                    "textFormat": o.text_format,
                    "nonVisibleData": text_or_base64(o.non_visible_data),
                }
                for o in self.model.all()
            ],
        }
