"""The connector contract's identity check for SMS links.

The person is whoever holds the phone the link was texted to. The impostor case
is a link texted to one number settling a request that names another (a mixed-up
or forged link record): it must fail, not approve the other number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_smslink.config import Config
from ciba_gateway_smslink.connector import SmsLinkConnector
from ciba_gateway_smslink.links import LinkRecord, link_key
from smslink_support import (
    KNOWN,
    NAMED,
    FakeClock,
    Gateway,
    csrf_of,
    get,
    outbox,
    post,
    sha256_hex,
    sms_connector,
    start_request,
    token_of,
)

from ciba_gateway.connector import PollResult
from ciba_gateway.connector.testing import IdentityContract, Settle


class TestIdentity(IdentityContract):
    pii = (KNOWN, NAMED, KNOWN[1:], NAMED[1:])

    @pytest.fixture
    async def settle(self, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Settle]:
        gateway = Gateway(clock)
        raw = {k: v for k, v in sms_connector(tmp_path).items() if k != "type"}
        connector = SmsLinkConnector(msgspec.convert(raw, Config), gateway.deps())

        async def run(*, impostor: bool) -> PollResult:
            await connector.start(start_request(gateway, "req-known", KNOWN))
            await connector.start(start_request(gateway, "req-named", NAMED))
            token = token_of(outbox(connector).messages[0].link)  # texted to KNOWN
            if impostor:
                key = link_key(sha256_hex(token))
                raw_record = await gateway.state.get(key)
                assert raw_record is not None
                record = msgspec.json.decode(raw_record, type=LinkRecord)
                forged = msgspec.structs.replace(record, ref="req-named")
                await gateway.state.put(key, msgspec.json.encode(forged), 60)
            csrf = csrf_of(str((await connector.show(get(token))).body))
            await connector.decide(post(token, csrf, "approve"))
            assert len(gateway.resolved) == 1
            return gateway.resolved[0][1]

        yield run
        await connector.aclose()
