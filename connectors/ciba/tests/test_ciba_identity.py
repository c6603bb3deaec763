"""The connector contract's identity check, run against oidc-provider.

The provider resolves the hint LIAR to an account whose national id is OLA's:
an upstream that authenticated someone else than the person asked for.
"""

from __future__ import annotations

import pytest
from conftest import ConnectorFactory
from op_support import LIAR, OLA, TestOp
from test_ciba_oidc_provider import approved_flow

from ciba_gateway.connector import PollResult
from ciba_gateway.connector.testing import IdentityContract, Settle


class TestIdentity(IdentityContract):
    pii = (OLA, LIAR)

    @pytest.fixture
    def settle(self, make_connector: ConnectorFactory, op: TestOp) -> Settle:
        async def run(*, impostor: bool) -> PollResult:
            return await approved_flow(make_connector(), op, LIAR if impostor else OLA)

        return run
