"""Shared test helpers for the SMS link connector: config, a real app, a hand-moved clock."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from ciba_gateway_smslink.connector import SmsLinkConnector
from ciba_gateway_smslink.senders import OutboxSender, SmsMessage
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.connector import (
    CallbackRequest,
    ConnectorDeps,
    LoginHint,
    Outcome,
    StartRequest,
)
from ciba_gateway.connector.testing import FakeClock, MemoryState
from ciba_gateway.store.memory import MemoryStore

CIBA = "urn:openid:params:grant-type:ciba"
SECRET = "callcenter-secret-0123456789"
OTHER_SECRET = "branch-secret-0123456789abcdef"
KNOWN = "+46701234567"
NAMED = "+46709876543"
NORWAY = "+4791234567"
UNKNOWN = "+46700000000"
CLIENT_NAME = "Acme & Sons <Bank>"
STATE_NS = "c:acme:sms"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token_of(link: str) -> str:
    """The secret token at the end of a link."""
    return urlsplit(link).path.rsplit("/", 1)[-1]


def sms_connector(
    tmp_path: Path,
    *,
    sender: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The YAML mapping of the ``sms`` connector used by most tests."""
    return {
        "type": "smslink",
        "sender": sender or {"type": "outbox"},
        "allowed_prefixes": ["+46", "+47"],
        "directory": {
            "type": "allow_list",
            "numbers": [KNOWN, NORWAY, {"number": NAMED, "name": "Greta Gustafsson"}],
        },
        "rate_limit": {"per_number": 3, "per_client": 10, "window": 600},
        **overrides,
    }


def gateway_yaml(
    tmp_path: Path, *, issuer: str, connector: dict[str, Any], delivery: str = "poll"
) -> str:
    """A one-tenant gateway config routing ``tel:*`` to the ``sms`` connector."""
    document = {
        "store": {"url": "memory://"},
        "tenants": [
            {
                "id": "acme",
                "issuer": issuer,
                "keys": [
                    {
                        "kid": "acme-1",
                        "alg": "ES256",
                        "file": f"{tmp_path}/acme-1.jwk",
                        "generate": True,
                    }
                ],
                "subject": {"salt": "acme-subject-salt-0123456789"},
                "lifetimes": {"auth_request": 120, "auth_request_max": 300, "poll_interval": 5},
                "connectors": {"sms": connector},
                "routes": [{"login_hint": "tel:*", "connector": "sms"}],
                "clients": [
                    {
                        "client_id": "callcenter",
                        "name": CLIENT_NAME,
                        "auth": {"method": "client_secret_basic", "secret": SECRET},
                        "scopes": ["openid", "phone", "profile"],
                        "authorization_details_types": ["payment_initiation", "approval"],
                    },
                    {
                        "client_id": "branch",
                        "auth": {"method": "client_secret_basic", "secret": OTHER_SECRET},
                        "scopes": ["openid", "phone"],
                    },
                ],
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


CREDENTIALS = {"callcenter": SECRET, "branch": OTHER_SECRET}


@dataclass
class Harness:
    """The real gateway app with the SMS connector, called like a relying party and a phone."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    store: MemoryStore
    clock: FakeClock

    @property
    def connector(self) -> SmsLinkConnector:
        return self.app.state.gateway.tenants["acme"].connectors["sms"]  # type: ignore[no-any-return]

    @property
    def outbox(self) -> list[SmsMessage]:
        sender = self.connector.sender
        assert isinstance(sender, OutboxSender)
        return sender.messages

    async def bc_authorize(
        self,
        number: str = KNOWN,
        *,
        binding_message: str | None = "Pay 100 EUR to shop 42",
        client_id: str = "callcenter",
        scope: str = "openid phone profile",
    ) -> Any:
        data = {"scope": scope, "login_hint": f"tel:{number}"}
        if binding_message is not None:
            data["binding_message"] = binding_message
        return await self.client.post(
            "/acme/bc-authorize", data=data, headers=basic(client_id, CREDENTIALS[client_id])
        )

    async def start(self, number: str = KNOWN, **kwargs: Any) -> tuple[str, str]:
        """A successful bc-authorize: its auth_req_id and the link texted to ``number``."""
        response = await self.bc_authorize(number, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["auth_req_id"], self.outbox[-1].link

    async def token(self, auth_req_id: str, client_id: str = "callcenter") -> Any:
        return await self.client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=basic(client_id, CREDENTIALS[client_id]),
        )

    async def open(self, link: str) -> Any:
        return await self.client.get(link)

    async def submit(
        self,
        link: str,
        decision: str,
        *,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """POST the page's form; ``csrf`` defaults to the token the page shows."""
        if csrf is None:
            csrf = csrf_of((await self.open(link)).text)
        return await self.client.post(
            link, data={"csrf": csrf, "decision": decision}, headers=headers or {}
        )

    async def claims(self, id_token: str) -> dict[str, Any]:
        keys = KeySet.import_key_set((await self.client.get("/acme/jwks")).json())
        return dict(jwt.decode(id_token, keys, algorithms=["ES256"]).claims)


def csrf_of(html: str) -> str:
    """The hidden form token of an approval page."""
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


BASE = "https://gw.example/acme/sms"


class Gateway:
    """The gateway side of ConnectorDeps: pending requests and the outcomes resolved."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.state = MemoryState(clock)
        self.pending: dict[str, StartRequest] = {}
        self.resolved: list[tuple[str, Outcome]] = []

    async def resolve(self, ref: str, outcome: Outcome) -> bool:
        if self.pending.pop(ref, None) is None:
            return False
        self.resolved.append((ref, outcome))
        return True

    async def lookup(self, ref: str) -> StartRequest | None:
        request = self.pending.get(ref)
        if request is None or self.clock() >= request.expires_at:
            return None
        return request

    def deps(self) -> ConnectorDeps:
        return ConnectorDeps(
            tenant_id="acme",
            instance_name="sms",
            base_url=BASE,
            state=self.state,
            resolve=self.resolve,
            lookup=self.lookup,
            clock=self.clock,
        )


async def no_sleep(seconds: float) -> None:
    return None


def start_request(gateway: Gateway, ref: str = "req-1", number: str = KNOWN) -> StartRequest:
    request = StartRequest(
        ref=ref,
        tenant_id="acme",
        client_id="callcenter",
        client_name="Acme",
        login_hint=LoginHint(kind="tel", value=number),
        scope=("openid", "phone"),
        binding_message="Pay 10",
        expires_at=gateway.clock() + 120,
    )
    gateway.pending[ref] = request
    return request


def outbox(connector: SmsLinkConnector) -> OutboxSender:
    assert isinstance(connector.sender, OutboxSender)
    return connector.sender


def get(token: str) -> CallbackRequest:
    return CallbackRequest(
        method="GET", path_params={"token": token}, query={}, form={}, headers={}
    )


def post(token: str, csrf: str, decision: str) -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        path_params={"token": token},
        query={},
        form={"csrf": csrf, "decision": decision},
        headers={"sec-fetch-site": "same-origin", "origin": "https://gw.example"},
    )
