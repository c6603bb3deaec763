"""The strict YAML loader of the gateway's configuration (DESIGN.md section 6).

``load_config`` / ``parse_config`` turn a YAML document into a frozen
:class:`~ciba_gateway.config.model.GatewayConfig`, or raise
:class:`~ciba_gateway.errors.ConfigError` listing *every* problem found, each
with a path such as ``tenants[0].clients[2].auth.method``.

The pipeline:

1. **Strict YAML.** :class:`StrictLoader` (PyYAML's safe loader) rejects
   duplicate mapping keys; syntax errors are reported with line and column.
   YAML 1.1 scalars keep their YAML type: an unquoted ``NO`` is the boolean
   false and is rejected where a string is expected, never turned into ``"NO"``.
2. **Environment interpolation** in string values: ``${VAR}``,
   ``${VAR:-default}`` (the default also applies when ``VAR`` is empty), also
   inside longer strings (``"http://${HOST}:8080"``); ``$${`` writes a literal
   ``${``. An unquoted value is typed after substitution, as if its text had
   been written there (``port: ${PORT:-8080}`` is an int); quote it to keep a
   string (``secret: "${SECRET}"``). An unset variable without a default is a
   problem at the value's path. Keys are never interpolated.
3. **Connector settings in two passes.** ``tenants[i].connectors.<name>`` is
   written flat, ``{type: ..., **settings}``. Pass 1 checks that ``type`` names
   an installed connector; pass 2 decodes the rest into that connector's
   ``Config`` Struct, which becomes ``ConnectorInstance.settings``.
4. **The model.** ``msgspec.convert`` into ``GatewayConfig``. msgspec stops at
   the first error, so on failure a checker walks the Struct types against the
   data and reports unknown keys, missing keys, bad values and the
   ``__post_init__`` rules of every Struct whose own fields are fine.

A value that already has a problem (an unset variable, say) is not judged
again, so one mistake yields one message.

Relative file paths in the configuration (key files, certificates, SQLite
URLs) are kept as written and resolve against the process's working
directory, not against the configuration file's directory.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ciba_gateway.config.model import GatewayConfig
from ciba_gateway.connector.registry import ConnectorRegistry
from ciba_gateway.errors import ConfigError, ConfigProblem

__all__ = [
    "StrictLoader",
    "format_problems",
    "load_config",
    "locate",
    "parse_config",
    "read_document",
]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_MAX_NODES = 200_000
"""Bound on the nodes visited, so alias bombs ("billion laughs") fail fast."""

_REFERENCE = re.compile(
    r"(?P<escape>\$\$\{)"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{)"
)
_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?) - at (?P<key>`key` in )?`\$(?P<rest>[^`]*)`$", re.DOTALL)
_RULE_PATH = re.compile(
    r"^(?P<path>[A-Za-z_]\w*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*): (?P<message>.+)$", re.S
)
_BOOL_HINT = " (unquoted yes/no/on/off/true/false are booleans in YAML; quote a string)"
_INVALID = object()


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that rejects duplicate mapping keys.

    It also remembers which scalars were written plain and untagged, so that
    interpolated values can be typed like the text they stand for.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.plain_scalars: set[int] = set()

    def compose_scalar_node(self, anchor: str | None) -> ScalarNode:
        event = self.peek_event()
        node = super().compose_scalar_node(anchor)
        if event.tag is None and event.style is None:
            self.plain_scalars.add(id(node))
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        duplicates = _duplicate_keys(self, node) if isinstance(node, MappingNode) else []
        if duplicates:
            first, again = duplicates[0]
            raise ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {again.value!r} (first at line {first.start_mark.line + 1})",
                again.start_mark,
            )
        return super().construct_mapping(node, deep=deep)


def _duplicate_keys(loader: yaml.SafeLoader, node: MappingNode) -> list[tuple[Node, Node]]:
    """Pairs ``(first, again)`` of key nodes written twice in one mapping.

    Keys brought in by a merge (``<<: *anchor``) may be overridden and are
    not duplicates.
    """
    seen: dict[Any, Node] = {}
    found: list[tuple[Node, Node]] = []
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        try:
            key = loader.construct_object(key_node)
            first = seen.setdefault(key, key_node)
        except (ConstructorError, TypeError):
            continue
        if first is not key_node:
            found.append((first, key_node))
    return found


class _Problems:
    """The problems found so far, and the paths whose values stand in for one."""

    def __init__(self) -> None:
        self.items: list[ConfigProblem] = []
        self.tainted: set[str] = set()
        self.locations: dict[str, tuple[int, int]] = {}
        """path -> (line, column) of where its key or item starts in the YAML."""

    def add(self, path: str, message: str, *, at: str | None = None) -> None:
        """Record a problem of ``path``, located at ``at`` (default: ``path``) in the file."""
        if any(p.path == path and p.message == message for p in self.items):
            return
        line, column = locate(self.locations, path if at is None else at) or (None, None)
        self.items.append(ConfigProblem(path, message, line=line, column=column))

    def taint(self, path: str) -> None:
        self.tainted.add(path)

    def is_tainted(self, path: str) -> bool:
        """Whether ``path`` lies at or under a value that already has a problem."""
        return any(_is_within(path, t) for t in self.tainted)

    def covers_taint(self, path: str) -> bool:
        """Whether a value that already has a problem lies at or under ``path``."""
        return any(_is_within(t, path) for t in self.tainted)


_LAST_STEP = re.compile(r"(\.[^.\[]+|\[\d+\])$")


def locate(locations: Mapping[str, tuple[int, int]], path: str) -> tuple[int, int] | None:
    """(line, column) of ``path``, or of its nearest ancestor the file has."""
    while path not in locations:
        if not path:
            return None
        path = _LAST_STEP.sub("", path) if _LAST_STEP.search(path) else ""
    return locations[path]


def _is_within(path: str, ancestor: str) -> bool:
    if not ancestor or path == ancestor:
        return True
    return path.startswith(ancestor) and path[len(ancestor)] in ".["


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _TooLargeError(Exception):
    pass


class _Builder:
    """Builds plain Python data from the YAML node tree, tracking paths.

    Doing the construction here (rather than in PyYAML) lets every duplicate
    key and every unset variable be reported at its path, not just the first.
    """

    def __init__(self, loader: StrictLoader, env: Mapping[str, str], problems: _Problems) -> None:
        self.loader = loader
        self.env = env
        self.problems = problems
        self.visited = 0

    def build(self, node: Node, path: str, ancestors: frozenset[int] = frozenset()) -> Any:
        self.visited += 1
        if self.visited > _MAX_NODES:
            raise _TooLargeError
        self._mark(path, node)
        if id(node) in ancestors:
            self.problems.add(path, f"line {_line(node)}: an alias refers to its own parent")
            self.problems.taint(path)
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, MappingNode) and node.tag == _MAP_TAG:
            return self._mapping(node, path, ancestors | {id(node)})
        if isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            inner = ancestors | {id(node)}
            return [self.build(item, f"{path}[{i}]", inner) for i, item in enumerate(node.value)]
        return self._construct(node, path, deep=True)

    def _mark(self, path: str, node: Node) -> None:
        mark = node.start_mark
        self.problems.locations.setdefault(path, (mark.line + 1, mark.column + 1))

    def _construct(self, node: Node, path: str, *, deep: bool = False) -> Any:
        try:
            return self.loader.construct_object(node, deep=deep)
        except ConstructorError as exc:
            self.problems.add(path, f"line {_line(node)}: {exc.problem}")
            self.problems.taint(path)
            return None

    def _mapping(self, node: MappingNode, path: str, ancestors: frozenset[int]) -> dict[Any, Any]:
        for first, again in _duplicate_keys(self.loader, node):
            self.problems.add(
                _join(path, again.value),
                f"duplicate key {again.value!r} at line {_line(again)}"
                f" (first at line {_line(first)})",
            )
        try:
            self.loader.flatten_mapping(node)
        except ConstructorError as exc:
            self.problems.add(path, f"line {_line(node)}: {exc.problem}")
            self.problems.taint(path)
            return {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problems.add(path, f"line {_line(key_node)}: keys must be scalars")
                continue
            key = self._construct(key_node, path)
            self._mark(_join(path, key), key_node)
            result[key] = self.build(value_node, _join(path, key), ancestors)
        return result

    def _scalar(self, node: ScalarNode, path: str) -> Any:
        value = self._construct(node, path)
        if not isinstance(value, str) or "${" not in value:
            return value
        text, ok = self._interpolate(value, path)
        if not ok:
            self.problems.taint(path)
            return text
        if id(node) in self.loader.plain_scalars:
            tag = self.loader.resolve(ScalarNode, text, (True, False))
            if tag != _STR_TAG:
                return self._construct(ScalarNode(tag, text, node.start_mark, node.end_mark), path)
        return text

    def _interpolate(self, value: str, path: str) -> tuple[str, bool]:
        ok = True

        def substitute(match: re.Match[str]) -> str:
            nonlocal ok
            if match["escape"]:
                return "${"
            if match["bad"]:
                ok = False
                self.problems.add(
                    path, "malformed ${...} reference (write ${NAME}, ${NAME:-default} or $${)"
                )
                return ""
            name, default = match["name"], match["default"]
            current = self.env.get(name)
            if default is not None and not current:
                return default
            if current is None:
                ok = False
                self.problems.add(path, f"environment variable {name} is not set")
                # The reference stands in, padded past the length rules of secrets and
                # salts, so the rules of the mapping around it still run in this pass.
                return match[0].ljust(32, "_")
            return current

        return _REFERENCE.sub(substitute, value), ok


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_struct_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


_PLAIN_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "mapping": "a mapping",
    "list": "a list",
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "null": "nothing (null)",
}


def _humanize(message: str) -> str:
    # msgspec speaks JSON types in backticks; the operator writes YAML values.
    message = re.sub(r"\bObject missing required field\b", "missing required key", message)
    message = re.sub(r"\bObject contains unknown field\b", "unknown key", message)
    message = re.sub(r"`([^`]*)`", lambda m: _PLAIN_TYPES.get(m[1], repr(m[1])), message)
    message = message.replace(" matching regex ", " matching the pattern ")
    if re.match(r"[A-Z][a-z]", message):
        message = message[0].lower() + message[1:]
    return message


class _Checker:
    """Explains why data does not convert to a type: every problem, with its path."""

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.found = 0

    def decode(self, value: Any, tp: Any, path: str) -> Any:
        """``msgspec.convert(value, tp)``, or ``_INVALID`` after reporting why not."""
        try:
            return msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            self._explain(value, tp, path, exc)
            return _INVALID

    def _report(self, path: str, message: str, *, at: str | None = None) -> None:
        self.found += 1
        if not self.problems.is_tainted(path):
            self.problems.add(path, message, at=at)

    def _report_error(self, path: str, exc: msgspec.ValidationError, value: Any) -> None:
        message = str(exc)
        match = _MSGSPEC_AT.match(message)
        if match:
            message, rest = match["msg"], match["rest"]
            if match["key"]:
                message = f"invalid key: {_humanize(message)}"
            path = (path + rest) if path else rest.lstrip(".")
        message = _humanize(message)
        if message.startswith("expected text") and "got true or false" in message:
            message += _BOOL_HINT
        # A rule may name the field it is about: "routes[1].connector: ...".
        named = _RULE_PATH.match(message)
        if named:
            path, message = _join(path, named["path"]), named["message"]
        self.found += 1
        # A rule of a Struct may fail because of a stand-in value below it (a rule that
        # names its field is about that field only).
        if (named or not self.problems.covers_taint(path)) and not self.problems.is_tainted(path):
            self.problems.add(path, message)

    def _explain(self, value: Any, tp: Any, path: str, exc: msgspec.ValidationError) -> None:
        before = self.found
        base = _strip_annotated(tp)
        origin = get_origin(base)
        args = get_args(base)
        if _is_struct_type(base) and isinstance(value, dict):
            self._explain_struct(value, base, path)
        elif origin is Literal:
            choices = ", ".join(str(a) for a in args)
            wants_str = any(isinstance(a, str) for a in args)
            hint = _BOOL_HINT if isinstance(value, bool) and wants_str else ""
            self._report(path, f"expected one of {choices}, got {value!r}{hint}")
        elif origin in (list, tuple, set, frozenset) and isinstance(value, list):
            # Fixed-shape tuples are left to msgspec's own message.
            if origin is not tuple or args[1:] == (...,):
                for i, item in enumerate(value):
                    self.decode(item, args[0], f"{path}[{i}]")
        elif origin is dict and isinstance(value, dict) and args:
            key_type, value_type = args
            for key, item in value.items():
                try:
                    msgspec.convert(key, key_type)
                except msgspec.ValidationError as key_exc:
                    extra = _BOOL_HINT if isinstance(key, bool) else ""
                    self._report(
                        _join(path, key), f"invalid key {key!r}: {_humanize(str(key_exc))}{extra}"
                    )
                    continue
                self.decode(item, value_type, _join(path, key))
        elif origin in (Union, types.UnionType) and value is not None:
            members = [a for a in args if a is not type(None)]
            if len(members) == 1:
                self.decode(value, members[0], path)
        if self.found == before:
            self._report_error(path, exc, value)

    def _explain_struct(self, value: dict[Any, Any], cls: type[msgspec.Struct], path: str) -> None:
        config = cls.__struct_config__
        if config.array_like:
            return
        fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
        allowed = set(fields) | ({config.tag_field} if config.tag_field else set())
        repaired = {k: v for k, v in value.items() if k in allowed}
        for key in value:
            if not isinstance(key, str):
                hint = _BOOL_HINT if isinstance(key, bool) else ""
                self._report(path, f"keys must be strings, got {key!r}{hint}")
            elif key not in allowed and config.forbid_unknown_fields:
                close = difflib.get_close_matches(key, sorted(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self._report(path, f"unknown key {key!r}{hint}", at=_join(path, key))
        can_repair = True
        for name, field in fields.items():
            if name in value:
                if self.decode(value[name], field.type, _join(path, name)) is _INVALID:
                    del repaired[name]  # its default stands in, if it has one
                    can_repair = can_repair and not field.required
            elif field.required:
                self._report(path, f"missing required key {name!r}")
                can_repair = False
        if can_repair and repaired != value:
            self._check_rules(repaired, cls, path)

    def _check_rules(self, repaired: dict[Any, Any], cls: type[msgspec.Struct], path: str) -> None:
        """The Struct's own rules (``__post_init__``) over its fields that are fine.

        So a cross-reference problem (a route to a connector that is not there) is
        reported in the same pass as a typo elsewhere in the same mapping.
        """
        try:
            msgspec.convert(repaired, cls)
        except msgspec.ValidationError as exc:
            match = _MSGSPEC_AT.match(str(exc))
            if not match or not match["rest"]:  # this Struct's rule, not a field's
                self._report_error(path, exc, repaired)


class _Connectors:
    """Pass 1 and 2 over ``tenants[i].connectors``: flat YAML to ``{type, settings}``."""

    def __init__(self, registry: ConnectorRegistry, checker: _Checker, problems: _Problems):
        self.registry = registry
        self.checker = checker
        self.problems = problems

    def decode_all(self, data: dict[Any, Any]) -> dict[Any, Any]:
        tenants = data.get("tenants")
        if not isinstance(tenants, list):
            return data
        return {
            **data,
            "tenants": [self._tenant(t, f"tenants[{i}]") for i, t in enumerate(tenants)],
        }

    def _tenant(self, tenant: Any, path: str) -> Any:
        if not isinstance(tenant, dict) or not isinstance(tenant.get("connectors"), dict):
            return tenant
        base = _join(path, "connectors")
        connectors = {
            name: self._connector(entry, _join(base, name))
            for name, entry in tenant["connectors"].items()
        }
        return {**tenant, "connectors": connectors}

    def _connector(self, entry: Any, path: str) -> Any:
        if not isinstance(entry, dict):
            return entry  # the model pass reports the wrong type
        # A stand-in that passes the model, so routes to this connector still resolve.
        placeholder = {"type": "invalid", "settings": None}
        if "type" not in entry:
            self.problems.add(path, "missing required key 'type'")
            return placeholder
        kind = entry["type"]
        if not isinstance(kind, str) or kind not in self.registry.connectors:
            if not self.problems.is_tainted(_join(path, "type")):
                installed = ", ".join(sorted(self.registry.connectors)) or "none"
                self.problems.add(
                    _join(path, "type"),
                    f"unknown connector type {kind!r} (installed: {installed})",
                )
            return placeholder
        settings = {k: v for k, v in entry.items() if k != "type"}
        config_cls = self.registry.connectors[kind].Config
        decoded = self.checker.decode(settings, config_cls, path)
        return {"type": kind, "settings": None if decoded is _INVALID else decoded}


def _check_simulators(
    data: dict[Any, Any], registry: ConnectorRegistry, problems: _Problems
) -> None:
    """Each ``simulators[i].type`` names an installed simulator distribution.

    Simulators are not part of a production install (each is its own distribution,
    ``ciba-gateway-<name>-sim``), so a configuration that mounts one is refused there.
    """
    simulators = data.get("simulators")
    for i, entry in enumerate(simulators if isinstance(simulators, list) else []):
        kind = entry.get("type") if isinstance(entry, dict) else None
        path = f"simulators[{i}].type"
        if not isinstance(kind, str) or kind in registry.simulators:
            continue  # a missing or mistyped type is the model pass's to report
        if not problems.is_tainted(path):
            installed = ", ".join(sorted(registry.simulators)) or "none"
            problems.add(
                path,
                f"unknown simulator type {kind!r} (installed: {installed}); simulators are"
                f" not part of a production install: pip install ciba-gateway-{kind}-sim",
            )


def read_document(
    text: str, env: Mapping[str, str] | None = None
) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The document as plain data (variables substituted) and where each path starts.

    For checks beyond the model (the files a configuration names); problems are left to
    ``parse_config``. ``(None, {})`` when the text is not YAML.
    """
    problems = _Problems()
    loader = StrictLoader(text)
    try:
        root = loader.get_single_node()
        data = (
            None if root is None else _Builder(loader, env or os.environ, problems).build(root, "")
        )
    except (yaml.YAMLError, _TooLargeError):
        return None, {}
    finally:
        loader.dispose()
    return data, problems.locations


def parse_config(
    text: str,
    *,
    registry: ConnectorRegistry,
    env: Mapping[str, str] | None = None,
    source: str = "<string>",
) -> GatewayConfig:
    """Parse and validate a configuration document.

    Args:
        text: the YAML document.
        registry: the installed connectors (``load_registry()``).
        env: variables for ``${VAR}``; ``os.environ`` when None.
        source: the document's name, used in YAML syntax errors.

    Raises:
        ConfigError: listing every problem found.
    """
    env = os.environ if env is None else env
    problems = _Problems()
    loader = StrictLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            detail = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ConfigError([ConfigProblem("", f"{where}: invalid YAML: {detail}")]) from None
        except yaml.YAMLError as exc:
            raise ConfigError([ConfigProblem("", f"{source}: invalid YAML: {exc}")]) from None
        try:
            data = None if root is None else _Builder(loader, env, problems).build(root, "")
        except _TooLargeError:
            message = f"{source}: the document expands to more than {_MAX_NODES} nodes"
            raise ConfigError([ConfigProblem("", message)]) from None
    finally:
        loader.dispose()

    if data is None:
        problems.add("", "the configuration is empty (expected a mapping with 'tenants')")
        raise ConfigError(problems.items)
    checker = _Checker(problems)
    if isinstance(data, dict):
        data = _Connectors(registry, checker, problems).decode_all(data)
        _check_simulators(data, registry, problems)
    config = checker.decode(data, GatewayConfig, "")
    if problems.items or config is _INVALID:
        if not problems.items:  # defensive: the checker always explains a failure
            problems.add("", "the configuration is invalid")
        raise ConfigError(problems.items)
    return config


def load_config(
    path: str | Path,
    *,
    registry: ConnectorRegistry,
    env: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """Read, parse and validate the configuration file at ``path``.

    Raises:
        ConfigError: listing every problem found, or why the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigProblem("", f"cannot read {path}: {reason}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"{path} is not UTF-8: {exc.reason}")]) from None
    return parse_config(text, registry=registry, env=env, source=str(path))


def format_problems(err: ConfigError, source: str | Path | None = None) -> str:
    """The problems of ``err`` in file order, one line each.

    A line reads ``FILE:LINE:COLUMN: path: message`` when ``source`` is given and the
    problem's place in the file is known, ``path: message`` otherwise.
    """
    lines = []
    for problem in sorted(err.problems, key=lambda p: (p.line is None, p.line or 0)):
        if source is not None and problem.line is not None:
            lines.append(f"{source}:{problem.line}:{problem.column}: {problem}")
        else:
            lines.append(str(problem))
    return "\n".join(lines)
