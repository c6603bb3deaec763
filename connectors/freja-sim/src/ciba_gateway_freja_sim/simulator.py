"""The Freja eID simulator without HTTP framework: the RP API, the phone and the controls.

``FrejaSimulator`` puts together the roles: ``RpApi`` (``api.py``) answers relying
parties, ``Authentications`` (``model.py``) holds the personas' authentications and
their timing, ``FaultRules`` and ``DetailsSigner`` (``faults.py``) decide what goes
wrong. ``app.py`` serves it; all state hangs off one instance, no globals.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ciba_gateway_freja_sim.api import Reply, RpApi
from ciba_gateway_freja_sim.faults import DetailsSigner, FaultRules
from ciba_gateway_freja_sim.model import Auth, Authentications, PendingView
from ciba_gateway_freja_sim.settings import FaultControl, Persona, SimulatorSettings
from ciba_gateway_freja_sim.signing import SigningMaterial

__all__ = ["FrejaSimulator"]


class FrejaSimulator:
    """A simulated Freja eID authentication and signature service."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        signing: SigningMaterial,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.signing = signing
        self.clock = clock
        self.model = Authentications(settings, signing=signing, clock=clock)
        self.faults = FaultRules(settings.personas)
        self.api = RpApi(
            settings,
            model=self.model,
            faults=self.faults,
            signer=DetailsSigner(signing, clock),
            sleep=sleep,
        )

    @property
    def personas(self) -> dict[tuple[str, str], Persona]:
        """Every persona by each key it is found by."""
        return self.model.personas

    @property
    def auths(self) -> dict[str, Auth]:
        """The authentications held, by ``authRef`` / ``signRef``."""
        return self.model.auths

    @property
    def calls(self) -> dict[str, int]:
        """Calls per operation."""
        return self.api.calls

    @property
    def received(self) -> list[dict[str, Any]]:
        """Decoded requests, newest last: ``{"operation", "request", "relyingPartyId"}``."""
        return list(self.api.received)

    async def handle(self, operation: str, method: str, body: bytes) -> Reply:
        """Answer one RP API call (see ``RpApi.handle``)."""
        return await self.api.handle(operation, method, body)

    # --- the phone ---------------------------------------------------------------

    def pending(self) -> list[PendingView]:
        """Authentications waiting for an answer, oldest first."""
        return self.model.pending()

    def decide(self, auth_ref: str, *, approve: bool) -> bool:
        """The person approves or rejects in the app; False when that is not possible now."""
        return self.model.decide(auth_ref, approve=approve)

    # --- controls ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget authentications, counters, cooldowns and runtime faults."""
        self.model.reset()
        self.api.reset()
        self.faults.reset()

    def set_fault(self, control: FaultControl) -> None:
        """Add a runtime fault rule ahead of the others; ``kind: none`` without latency clears."""
        self.faults.add(control)

    def stats(self) -> dict[str, Any]:
        """Calls per operation, the requests received and the authentications held."""
        return {
            "calls": dict(self.calls),
            "received": self.received,
            "auths": [
                {
                    a.ref_key: a.auth_ref,
                    "status": a.status,
                    "user": a.persona.user_info,
                    "text": a.sign_text,
                }
                for a in self.model.advanced(self.clock())
            ],
            "x5t": self.signing.x5t,
        }
