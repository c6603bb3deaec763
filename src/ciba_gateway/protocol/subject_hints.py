"""Remembering which login hint an issued ``sub`` stands for (id_token_hint support).

With hashed subjects the gateway cannot turn a ``sub`` back into a person, yet
CIBA lets a client name the user with an ``id_token_hint``. When tokens are
issued, the login hint is stored under the ``sub``, sealed with a key derived
from the tenant's subject salt and the ``sub`` (AES-GCM), for the tenant's
``lifetimes.id_token_hint`` seconds. A store dump alone reveals no identifier.
"""

from __future__ import annotations

import msgspec

from ciba_gateway.config.model import TenantConfig
from ciba_gateway.connector import LoginHint
from ciba_gateway.store import namespaces
from ciba_gateway.store.base import Value
from ciba_gateway.store.values import Values
from ciba_gateway.tokens.sealing import seal, unseal

__all__ = ["recall_subject_hint", "subject_hint_value"]


def _key_material(tenant: TenantConfig, sub: str) -> str:
    return f"{tenant.id}:{tenant.subject.salt}:{sub}"


def subject_hint_value(values: Values, tenant: TenantConfig, sub: str, hint: LoginHint) -> Value:
    """The value, not yet written, that records ``sub`` was issued for ``hint``."""
    blob = seal(_key_material(tenant, sub), msgspec.msgpack.encode(hint))
    hints = values.namespace(namespaces.subject_hints(tenant.id))
    return hints.value(sub, blob, tenant.lifetimes.id_token_hint)


async def recall_subject_hint(values: Values, tenant: TenantConfig, sub: str) -> LoginHint | None:
    """The hint ``sub`` was issued for, or None when unknown or forgotten."""
    if not sub:
        return None
    blob = await values.namespace(namespaces.subject_hints(tenant.id)).get(sub)
    if blob is None:
        return None
    try:
        return msgspec.msgpack.decode(unseal(_key_material(tenant, sub), blob), type=LoginHint)
    except Exception:
        return None
