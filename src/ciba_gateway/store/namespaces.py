"""Every namespace of the store's value space, named in one place.

A value's namespace says what it is and whose it is; the store keeps namespaces
apart. Each function here makes a ``Name``, and a store's values are reached only
through ``Values.namespace(name)`` (``store.values``), which refuses anything
else, so a namespace cannot be misspelt at a call site. The strings are part of
the stored data: changing one orphans what a running deployment holds under the
old name. Token-poll pacing is not here: it lives beside the request (``Store.poll``).
"""

from __future__ import annotations

__all__ = [
    "Name",
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


class Name(str):
    """A declared namespace, made by the functions below and nowhere else (a unit test checks)."""

    __slots__ = ()


def access_tokens(tenant_id: str) -> Name:
    """Sealed access-token records by token key (userinfo, introspection, revocation)."""
    return Name(f"at:{tenant_id}")


def subject_hints(tenant_id: str) -> Name:
    """Sealed login hints by issued ``sub`` (``id_token_hint`` support)."""
    return Name(f"sub_hint:{tenant_id}")


def refresh_tokens(tenant_id: str) -> Name:
    """Sealed refresh-token records by token key."""
    return Name(f"rt:{tenant_id}")


def refresh_uses(tenant_id: str) -> Name:
    """Refresh tokens remembered once as they are redeemed (``Namespace.remember``)."""
    return Name(f"rtuse:{tenant_id}")


def refresh_used(tenant_id: str) -> Name:
    """Refresh tokens already rotated: presenting one again revokes its family."""
    return Name(f"rtused:{tenant_id}")


def refresh_families(tenant_id: str) -> Name:
    """Live refresh-token families by family id."""
    return Name(f"rtfam:{tenant_id}")


def client_assertions(tenant_id: str, client_id: str) -> Name:
    """The jti replay cache of one client's ``private_key_jwt`` / ``client_secret_jwt``."""
    return Name(f"client_assertion:{tenant_id}:{client_id}")


def request_objects(tenant_id: str, client_id: str) -> Name:
    """The jti replay cache of one client's signed request objects."""
    return Name(f"request_object:{tenant_id}:{client_id}")


def connector_state(tenant_id: str, instance_name: str) -> Name:
    """One connector instance's own values (``ConnectorDeps.state``: SMS links, counters)."""
    return Name(f"c:{tenant_id}:{instance_name}")
