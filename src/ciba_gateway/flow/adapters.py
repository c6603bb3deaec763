"""Adapters that give connectors the services of the ConnectorDeps contract."""

from __future__ import annotations

from ciba_gateway.connector import ConnectorDeps, Outcome, StartRequest
from ciba_gateway.flow.engine import FlowEngine, start_request_for
from ciba_gateway.flow.model import Status
from ciba_gateway.store import namespaces

__all__ = ["connector_deps"]


def connector_deps(
    engine: FlowEngine,
    *,
    tenant_id: str,
    instance_name: str,
    base_url: str,
    client_names: dict[str, str],
) -> ConnectorDeps:
    """The services a connector instance of ``tenant_id`` receives."""

    async def resolve(ref: str, outcome: Outcome) -> bool:
        return await engine.settle_by_id(ref, outcome, tenant_id=tenant_id)

    async def lookup(ref: str) -> StartRequest | None:
        request = await engine.get(ref)
        if (
            request is None
            or request.tenant_id != tenant_id
            or request.connector != instance_name
            or request.status is not Status.PENDING
            or engine.clock() >= request.expires_at
        ):
            return None
        return start_request_for(request, client_names.get(request.client_id, request.client_id))

    return ConnectorDeps(
        tenant_id=tenant_id,
        instance_name=instance_name,
        base_url=base_url,
        state=engine.values.namespace(namespaces.connector_state(tenant_id, instance_name)),
        resolve=resolve,
        lookup=lookup,
        clock=engine.clock,
    )
