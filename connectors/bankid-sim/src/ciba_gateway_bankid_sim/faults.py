"""The BankID simulator's fault rules: latency, 500, 503 or a dropped answer, per person."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ciba_gateway_bankid_sim.settings import Fault, FaultControl, Persona

__all__ = ["FaultRules", "Rule"]


@dataclass
class Rule:
    """What goes wrong with a call, and for how many more calls (None: until reset)."""

    fault: Fault
    latency: float
    remaining: int | None = None


class FaultRules:
    """Rules by personal number, ``*`` for every call: the personas' own, then runtime ones."""

    def __init__(self, personas: Iterable[Persona]) -> None:
        self._personas = tuple(personas)
        self.rules: dict[str, Rule] = {}
        self.reset()

    def reset(self) -> None:
        """Drop runtime rules; the personas' own faults apply again."""
        self.rules = {
            p.personal_number: Rule(p.fault, p.latency)
            for p in self._personas
            if p.fault != "none" or p.latency
        }

    def set(self, control: FaultControl) -> None:
        """Install (or with fault none and no latency, remove) a rule."""
        if control.fault == "none" and not control.latency:
            self.rules.pop(control.personal_number, None)
        else:
            self.rules[control.personal_number] = Rule(
                control.fault, control.latency, control.times
            )

    def take(self, pnr: str | None) -> Rule | None:
        """The rule for a call about ``pnr`` (its own, else ``*``), counted as used."""
        key = pnr if pnr is not None and pnr in self.rules else "*"
        rule = self.rules.get(key)
        if rule is not None and rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self.rules[key]
        return rule
