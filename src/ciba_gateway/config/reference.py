"""Documentation generated from the config Structs: a JSON Schema and a Markdown reference.

``ciba-gateway config-schema`` prints the JSON Schema (for editor completion
of YAML files); docs/operations.md embeds ``markdown_reference()`` and a test
keeps it current.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from ciba_gateway.config.model import GatewayConfig

__all__ = ["json_schema", "markdown_reference"]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file (connector settings left open)."""
    return msgspec.json.schema(GatewayConfig)


def _type_name(t: mi.Type) -> str:
    if isinstance(t, mi.StructType):
        return t.cls.__name__
    if isinstance(t, mi.UnionType):
        return " \\| ".join(_type_name(x) for x in t.types)
    if isinstance(t, mi.LiteralType):
        return " \\| ".join(str(v) for v in t.values)
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return f"list of {_type_name(t.item_type)}"
    if isinstance(t, mi.DictType):
        return f"map of {_type_name(t.value_type)}"
    if isinstance(t, mi.NoneType):
        return "null"
    if isinstance(t, mi.AnyType):
        return "any"
    return type(t).__name__.removesuffix("Type").lower()


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default is not mi.NODEFAULT:
        value = field.default
        if isinstance(value, msgspec.Struct):
            return "(see below)"
        return f"`{msgspec.json.encode(value).decode()}`"
    return "`{}`" if field.default_factory is dict else "`[]`"


def _structs(t: mi.Type, seen: dict[str, mi.StructType]) -> None:
    if isinstance(t, mi.StructType):
        if t.cls.__name__ in seen:
            return
        seen[t.cls.__name__] = t
        for field in t.fields:
            _structs(field.type, seen)
    elif isinstance(t, mi.UnionType):
        for x in t.types:
            _structs(x, seen)
    elif isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        _structs(t.item_type, seen)
    elif isinstance(t, mi.DictType):
        _structs(t.value_type, seen)


def markdown_reference() -> str:
    """One table per config Struct: key, type, default and the field's doc line."""
    seen: dict[str, mi.StructType] = {}
    _structs(mi.type_info(GatewayConfig), seen)
    out: list[str] = []
    for name, struct in seen.items():
        doc = (struct.cls.__doc__ or "").strip().splitlines()[0] if struct.cls.__doc__ else ""
        out.append(f"### {name}\n")
        if doc:
            out.append(f"{doc}\n")
        out.append("| key | type | default |")
        out.append("|---|---|---|")
        for field in struct.fields:
            out.append(f"| `{field.encode_name}` | {_type_name(field.type)} | {_default(field)} |")
        out.append("")
    return "\n".join(out)
