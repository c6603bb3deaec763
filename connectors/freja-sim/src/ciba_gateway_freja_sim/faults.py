"""The Freja simulator's faults: which rule hits a call, and the forged ``details`` JWS kinds.

Network kinds (``http500``, ``http503``, ``drop``) act on the HTTP answer; JWS kinds
change the signed ``details`` of an approved result the way an attacker or a broken
upstream would, so a connector's verification is tested against each.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from ciba_gateway_freja.wire import Operation

from ciba_gateway_freja_sim.settings import (
    JWS_FAULTS,
    NETWORK_FAULTS,
    Fault,
    FaultControl,
    Persona,
)
from ciba_gateway_freja_sim.signing import SigningMaterial, b64url, generate, unsigned_token

__all__ = ["MALLORY", "DetailsSigner", "FaultRules"]

MALLORY: Final = {"name": "Mallory", "surname": "Attacker"}
"""The names a forged result carries instead of the persona's."""
_MALLORY_SSN: Final = {"country": "SE", "ssn": "197001019876"}


@dataclass
class _Rule:
    target: str
    fault: Fault
    remaining: int | None


class FaultRules:
    """The fault rules in force: the personas' own, with runtime ones ahead of them."""

    def __init__(self, personas: Iterable[Persona]) -> None:
        self._personas = tuple(personas)
        self._rules: list[_Rule] = []
        self.reset()

    def reset(self) -> None:
        """Drop runtime rules; the personas' faults apply again from the start."""
        self._rules = [
            _Rule(p.user_info, p.fault, p.fault.times)
            for p in self._personas
            if p.fault is not None
        ]

    def add(self, control: FaultControl) -> None:
        """Add a runtime rule ahead of the others; ``kind: none`` without latency clears."""
        self._rules = [r for r in self._rules if r.target != control.user]
        if control.kind == "none" and control.latency == 0:
            return
        fault = Fault(
            kind=control.kind,
            latency=control.latency,
            endpoints=control.endpoints,
            times=control.times,
        )
        self._rules.insert(0, _Rule(control.user, fault, control.times))

    def network(self, op: Operation, target: str | None) -> Fault | None:
        """The network fault (or latency) for a call of ``op`` concerning ``target``; consumed."""
        rule = self._matching(op, target, NETWORK_FAULTS | {"none"})
        if rule is None:
            latency = self._matching(op, target, JWS_FAULTS)
            return latency.fault if latency is not None and latency.fault.latency else None
        self._consume(rule)
        return rule.fault

    def jws(self, op: Operation, target: str) -> str | None:
        """The JWS kind to forge an approved result of ``target`` with, if any; consumed."""
        rule = self._matching(op, target, JWS_FAULTS)
        if rule is None:
            return None
        self._consume(rule)
        return rule.fault.kind

    def _matching(self, op: Operation, target: str | None, kinds: frozenset[str]) -> _Rule | None:
        for rule in self._rules:
            if rule.target not in ("*", target):
                continue
            if rule.fault.endpoints and op not in rule.fault.endpoints:
                continue
            if rule.fault.kind in kinds:
                return rule
        return None

    def _consume(self, rule: _Rule) -> None:
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                self._rules.remove(rule)


class DetailsSigner:
    """Signs the ``details`` of a result: properly, or forged the way a JWS kind says."""

    def __init__(self, signing: SigningMaterial, clock: Callable[[], float]) -> None:
        self.signing = signing
        self._clock = clock
        self._other_key: SigningMaterial | None = None

    def sign(self, payload: dict[str, Any], kind: str | None) -> str:
        """The ``details`` JWS of ``payload``; ``kind`` None signs it as Freja does."""
        header = {"x5t": self.signing.x5t, "alg": "RS256"}
        if kind == "other_auth_ref":
            ref_key = "signRef" if "signRef" in payload else "authRef"
            payload = {**payload, ref_key: secrets.token_urlsafe(24)}
        elif kind == "stale_timestamp":
            payload = {**payload, "timestamp": payload["timestamp"] - 3_600_000}
        elif kind == "other_user":
            payload = {**payload, "userInfo": _other_user(payload["userInfo"])}
        data = msgspec.json.encode(payload)
        if kind == "alg_none":
            return unsigned_token({"x5t": self.signing.x5t, "alg": "none"}, data)
        if kind == "alg_hs256":
            # Key confusion: HMAC keyed with the public certificate a verifier holds.
            forged = {"x5t": self.signing.x5t, "alg": "HS256"}
            token = unsigned_token(forged, data)
            signing_input = token.rsplit(".", 1)[0].encode()
            mac = hmac.new(self.signing.cert_pem(), signing_input, hashlib.sha256).digest()
            return f"{signing_input.decode()}.{b64url(mac)}"
        if kind == "wrong_key":
            if self._other_key is None:
                self._other_key = generate(self._clock())
            return self._other_key.sign(data, header)
        token = self.signing.sign(data, header)
        if kind == "tamper_payload":
            changed = {
                **payload,
                "requestedAttributes": {**payload["requestedAttributes"], "basicUserInfo": MALLORY},
            }
            head, _, signature = token.split(".")
            return f"{head}.{b64url(msgspec.json.encode(changed))}.{signature}"
        return token


def _other_user(user_info: Any) -> Any:
    """Another person's ``userInfo`` in the same shape (an SSN object or JSON string)."""
    if isinstance(user_info, dict):
        return _MALLORY_SSN
    if isinstance(user_info, str) and user_info.startswith("{"):
        return msgspec.json.encode(_MALLORY_SSN).decode()
    return "mallory@example.com" if "@" in str(user_info) else "+46700000666"
