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


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DictState:
    """An inspectable ConnectorState: every key and value the connector stores, with TTLs."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes | int, float]] = {}

    def _live(self, key: str) -> bytes | int | None:
        entry = self.data.get(key)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self.data[key] = (value, self.clock() + ttl)

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    async def take(self, key: str) -> bytes | None:
        value = await self.get(key)
        self.data.pop(key, None)
        return value

    async def incr(self, key: str, ttl: float) -> int:
        value = self._live(key)
        if isinstance(value, int):
            self.data[key] = (value + 1, self.data[key][1])
            return value + 1
        self.data[key] = (1, self.clock() + ttl)
        return 1


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
