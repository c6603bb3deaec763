"""Every namespace of the store's value space, named in one place.

A value's namespace says what it is and whose it is; the store keeps namespaces
apart (``put_value(namespace, key, ...)``). The strings are part of the stored
data: changing one orphans what a running deployment holds under the old name.
Token-poll pacing is not here: it lives beside the request (``Store.poll``).
"""

from __future__ import annotations

__all__ = [
    "access_tokens",
    "client_assertions",
    "connector_state",
    "refresh_families",
    "refresh_tokens",
    "refresh_used",
    "refresh_uses",
    "request_objects",
    "subject_hints",
]


def access_tokens(tenant_id: str) -> str:
    """Sealed access-token records by token key (userinfo, introspection, revocation)."""
    return f"at:{tenant_id}"


def subject_hints(tenant_id: str) -> str:
    """Sealed login hints by issued ``sub`` (``id_token_hint`` support)."""
    return f"sub_hint:{tenant_id}"


def refresh_tokens(tenant_id: str) -> str:
    """Sealed refresh-token records by token key."""
    return f"rt:{tenant_id}"


def refresh_uses(tenant_id: str) -> str:
    """Refresh tokens remembered once as they are redeemed (``Store.remember``)."""
    return f"rtuse:{tenant_id}"


def refresh_used(tenant_id: str) -> str:
    """Refresh tokens already rotated: presenting one again revokes its family."""
    return f"rtused:{tenant_id}"


def refresh_families(tenant_id: str) -> str:
    """Live refresh-token families by family id."""
    return f"rtfam:{tenant_id}"


def client_assertions(tenant_id: str, client_id: str) -> str:
    """The jti replay cache of one client's ``private_key_jwt`` / ``client_secret_jwt``."""
    return f"client_assertion:{tenant_id}:{client_id}"


def request_objects(tenant_id: str, client_id: str) -> str:
    """The jti replay cache of one client's signed request objects."""
    return f"request_object:{tenant_id}:{client_id}"


def connector_state(tenant_id: str, instance_name: str) -> str:
    """One connector instance's own values (``ConnectorDeps.state``: SMS links, counters)."""
    return f"c:{tenant_id}:{instance_name}"
