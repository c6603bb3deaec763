"""The value-space namespaces: distinct, and spelled as deployments have them stored."""

from __future__ import annotations

from ciba_gateway.store import namespaces

TENANT_WIDE = {
    namespaces.access_tokens: "at:t1",
    namespaces.subject_hints: "sub_hint:t1",
    namespaces.refresh_tokens: "rt:t1",
    namespaces.refresh_uses: "rtuse:t1",
    namespaces.refresh_used: "rtused:t1",
    namespaces.refresh_families: "rtfam:t1",
}
PER_OWNER = {
    namespaces.client_assertions: "client_assertion:t1:c1",
    namespaces.request_objects: "request_object:t1:c1",
    namespaces.connector_state: "c:t1:c1",
}


def test_namespaces_keep_the_names_stored_data_has() -> None:
    """Renaming one would orphan what a running deployment holds under the old name."""
    for name, expected in TENANT_WIDE.items():
        assert name("t1") == expected
    for owner, expected in PER_OWNER.items():
        assert owner("t1", "c1") == expected


def test_every_declared_namespace_is_covered_and_distinct() -> None:
    declared = {getattr(namespaces, n) for n in namespaces.__all__}
    assert declared == set(TENANT_WIDE) | set(PER_OWNER)
    values = [*TENANT_WIDE.values(), *PER_OWNER.values()]
    assert len(set(values)) == len(values)
