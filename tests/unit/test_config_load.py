"""Tests of the strict YAML configuration loader (ciba_gateway.config.load)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
import yaml

from ciba_gateway.cli_check import check_config_command
from ciba_gateway.config.load import StrictLoader, format_problems, load_config, parse_config
from ciba_gateway.config.model import GatewayConfig
from ciba_gateway.connector.registry import ConnectorRegistry
from ciba_gateway.errors import ConfigError

SALT = "0123456789abcdef0123"
SECRET = "s3cret-s3cret-s3cret"


class FakeConnector:
    """A connector that does nothing; only its Config and class attributes matter here."""

    class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
        base_url: str
        timeout: float = 5.0

    login_hint_kinds: ClassVar[frozenset[str]] = frozenset({"ssn"})
    authorization_details_types: ClassVar[frozenset[str]] = frozenset()

    async def start(self, request: Any) -> Any:
        raise NotImplementedError

    async def poll(self, session: Any) -> Any:
        raise NotImplementedError

    async def cancel(self, session: Any) -> None:
        return None

    def routes(self) -> tuple[()]:
        return ()

    async def aclose(self) -> None:
        return None


REGISTRY = ConnectorRegistry({"fake": FakeConnector}, {})

VALID = f"""
server:
  port: 9000
store:
  url: "memory://"
tenants:
  - id: demo
    issuer: http://127.0.0.1:8080/demo
    keys: [{{kid: demo-1, file: var/keys/demo-1.jwk, generate: true}}]
    subject: {{salt: "{SALT}"}}
    connectors:
      bank: {{type: fake, base_url: "http://127.0.0.1:9999/rp"}}
    routes:
      - {{login_hint: ssn, connector: bank}}
    clients:
      - client_id: callcenter
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile]
  - id: acme
    issuer: https://idp.example/acme
    keys: [{{kid: acme-1, alg: RS256, file: /etc/keys/acme.jwk}}]
    subject: {{mode: national_id}}
    connectors:
      bank: {{type: fake, base_url: "https://bank.example", timeout: 2.5}}
    routes:
      - {{acr: "urn:x:bank", connector: bank}}
    clients:
      - client_id: pos
        auth: {{method: private_key_jwt, jwks_uri: "https://pos.example/jwks"}}
        delivery_mode: ping
        notification_endpoint: https://pos.example/cb
"""


def tenant(body: str = "", *, connectors: str = "", clients: str = "") -> str:
    """A one-tenant document; ``body`` is extra tenant-level YAML, indented by 4."""
    doc = f"""
tenants:
  - id: demo
    issuer: http://127.0.0.1:8080/demo
    keys: [{{kid: k1, file: k1.jwk}}]
    subject: {{salt: "{SALT}"}}
"""
    if connectors:
        doc += "    connectors:\n" + textwrap.indent(
            textwrap.dedent(connectors).lstrip("\n"), " " * 6
        )
    if clients:
        doc += "    clients:\n" + textwrap.indent(textwrap.dedent(clients).lstrip("\n"), " " * 6)
    if body:
        doc += textwrap.indent(textwrap.dedent(body), " " * 4)
    return doc


def problems_of(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The (path, message) pairs that parsing ``text`` reports."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, registry=REGISTRY, env=env or {})
    return [(p.path, p.message) for p in info.value.problems]


class TestValid:
    def test_two_tenants_decode_into_the_model(self) -> None:
        """A valid two-tenant document becomes a GatewayConfig with its values and defaults."""
        config = parse_config(VALID, registry=REGISTRY, env={})
        assert isinstance(config, GatewayConfig)
        assert [t.id for t in config.tenants] == ["demo", "acme"]
        assert config.server.port == 9000
        assert config.store.url == "memory://"
        demo, acme = config.tenants
        assert demo.keys[0].generate is True
        assert demo.clients[0].scopes == ("openid", "profile")
        assert acme.clients[0].delivery_mode == "ping"
        assert acme.subject.mode == "national_id"

    def test_connector_settings_become_the_plugin_config(self) -> None:
        """The flat connector mapping is split into its type and the plugin's decoded Config."""
        demo, acme = parse_config(VALID, registry=REGISTRY, env={}).tenants
        assert demo.connectors["bank"].type == "fake"
        assert demo.connectors["bank"].settings == FakeConnector.Config(
            base_url="http://127.0.0.1:9999/rp"
        )
        assert acme.connectors["bank"].settings.timeout == 2.5

    def test_relative_paths_are_kept_as_written(self) -> None:
        """Key file paths are not resolved against the configuration file's directory."""
        config = parse_config(VALID, registry=REGISTRY, env={}, source="/etc/gw/config.yaml")
        assert config.tenants[0].keys[0].file == "var/keys/demo-1.jwk"

    def test_load_config_reads_a_file(self, tmp_path: Path) -> None:
        """load_config reads the file and decodes it like parse_config."""
        path = tmp_path / "gateway.yaml"
        path.write_text(VALID, encoding="utf-8")
        assert load_config(path, registry=REGISTRY, env={}) == parse_config(
            VALID, registry=REGISTRY, env={}
        )


class TestStructure:
    def test_unknown_key_at_depth_is_reported_at_its_parent(self) -> None:
        """An unknown key deep in the tree is reported with the path of the mapping holding it."""
        doc = tenant(
            clients=f"""
            - client_id: cc
              auth: {{method: client_secret_basic, secret: "{SECRET}", foo: 1}}
            """
        )
        assert problems_of(doc) == [("tenants[0].clients[0].auth", "unknown key 'foo'")]

    def test_unknown_key_suggests_a_close_match(self) -> None:
        """A misspelt key comes with the field it probably meant."""
        doc = tenant("lifetimes: {id_tokn: 60}\n")
        assert problems_of(doc) == [
            ("tenants[0].lifetimes", "unknown key 'id_tokn' (did you mean 'id_token'?)")
        ]

    def test_every_problem_in_a_file_is_reported(self) -> None:
        """Problems in different places of one file are all reported, each at its path."""
        doc = f"""
server:
  port: 70000
  colour: blue
tenants:
  - id: demo
    keys: [{{kid: k1, file: k1.jwk, alg: HS256}}]
    subject: {{salt: "{SALT}"}}
    clients:
      - client_id: cc
        auth: {{method: basic, secret: "{SECRET}"}}
  - id: "bad id!"
    issuer: http://h/x
    keys: []
    subject: {{mode: national_id}}
"""
        problems = problems_of(doc)
        assert set(problems) == {
            ("tenants[0]", "missing required key 'issuer'"),
            (
                "tenants[0].keys[0].alg",
                "expected one of ES256, RS256, PS256, EdDSA, got 'HS256'",
            ),
            (
                "tenants[0].clients[0].auth.method",
                "expected one of client_secret_basic, client_secret_post, client_secret_jwt,"
                " private_key_jwt, tls_client_auth, self_signed_tls_client_auth, got 'basic'",
            ),
            (
                "tenants[1].id",
                "expected text matching the pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'",
            ),
            ("server", "unknown key 'colour'"),
            ("server.port", "expected a whole number <= 65535"),
        }
        assert len(problems) == 6

    def test_wrong_container_type_is_reported_in_yaml_words(self) -> None:
        """A scalar where a mapping belongs is reported as an expected mapping."""
        doc = tenant("lifetimes: 5\n")
        assert problems_of(doc) == [
            ("tenants[0].lifetimes", "expected a mapping, got a whole number")
        ]

    def test_empty_document_is_a_problem(self) -> None:
        """An empty file is reported as such, not as a type error."""
        assert problems_of("# nothing\n") == [
            ("", "the configuration is empty (expected a mapping with 'tenants')")
        ]

    def test_yaml_syntax_error_names_the_line(self) -> None:
        """A YAML syntax error is a single problem naming the source, line and column."""
        ((path, message),) = problems_of("tenants:\n  - id: [demo\n")
        assert path == ""
        assert message.startswith("<string>:3:1: invalid YAML:")

    def test_unreadable_file_is_a_problem(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming the file, not an OSError."""
        missing = tmp_path / "absent.yaml"
        with pytest.raises(ConfigError) as info:
            load_config(missing, registry=REGISTRY, env={})
        assert [p.message for p in info.value.problems] == [
            f"cannot read {missing}: No such file or directory"
        ]

    def test_format_problems_prints_one_line_each(self) -> None:
        """format_problems renders every problem as one ``path: message`` line."""
        doc = tenant("lifetimes: {id_tokn: 60}\nbogus: 1\n")
        with pytest.raises(ConfigError) as info:
            parse_config(doc, registry=REGISTRY, env={})
        assert format_problems(info.value).splitlines() == [
            "tenants[0].lifetimes: unknown key 'id_tokn' (did you mean 'id_token'?)",
            "tenants[0]: unknown key 'bogus'",
        ]
        assert format_problems(info.value, "gw.yaml").splitlines() == [
            "gw.yaml:7:17: tenants[0].lifetimes: unknown key 'id_tokn' (did you mean 'id_token'?)",
            "gw.yaml:8:5: tenants[0]: unknown key 'bogus'",
        ]


class TestStrictYaml:
    def test_duplicate_key_is_reported_with_lines(self) -> None:
        """A key written twice in one mapping is a problem naming both lines."""
        doc = tenant(
            clients=f"""
            - client_id: cc
              client_id: cc2
              auth: {{method: client_secret_basic, secret: "{SECRET}"}}
            """
        )
        assert problems_of(doc) == [
            (
                "tenants[0].clients[0].client_id",
                "duplicate key 'client_id' at line 9 (first at line 8)",
            )
        ]

    def test_merge_keys_are_not_duplicates(self) -> None:
        """Keys overridden after a YAML merge (``<<``) are allowed."""
        doc = tenant(
            clients=f"""
            - &base
              client_id: cc
              auth: {{method: client_secret_basic, secret: "{SECRET}"}}
            - <<: *base
              client_id: cc2
            """
        )
        clients = parse_config(doc, registry=REGISTRY, env={}).tenants[0].clients
        assert [c.client_id for c in clients] == ["cc", "cc2"]
        assert clients[1].auth == clients[0].auth

    def test_strict_loader_rejects_duplicates_on_its_own(self) -> None:
        """StrictLoader used directly with yaml.load refuses a duplicate key."""
        with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
            yaml.load("a: 1\na: 2\n", Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass

    def test_yaml11_no_is_not_turned_into_a_string(self) -> None:
        """An unquoted NO is a boolean and is rejected where a string is expected."""
        doc = tenant(
            clients=f"""
            - client_id: cc
              name: NO
              delivery_mode: off
              auth: {{method: client_secret_basic, secret: "{SECRET}"}}
            """
        )
        hint = " (unquoted yes/no/on/off/true/false are booleans in YAML; quote a string)"
        assert problems_of(doc) == [
            ("tenants[0].clients[0].name", "expected text, got true or false" + hint),
            (
                "tenants[0].clients[0].delivery_mode",
                "expected one of poll, ping, push, got False" + hint,
            ),
        ]

    def test_quoted_no_is_a_string(self) -> None:
        """A quoted "NO" stays the string it looks like."""
        doc = tenant(
            clients=f"""
            - client_id: cc
              name: "NO"
              auth: {{method: client_secret_basic, secret: "{SECRET}"}}
            """
        )
        assert parse_config(doc, registry=REGISTRY, env={}).tenants[0].clients[0].name == "NO"


class TestEnvironment:
    CLIENT = """
    - client_id: cc
      auth: {method: client_secret_basic, secret: "%s"}
    """

    def secret_of(self, value: str, env: dict[str, str]) -> str:
        doc = tenant(clients=self.CLIENT % value)
        return parse_config(doc, registry=REGISTRY, env=env).tenants[0].clients[0].auth.secret

    def test_set_variable_is_substituted(self) -> None:
        """``${VAR}`` is replaced by the variable's value."""
        assert self.secret_of("${CC_SECRET}", {"CC_SECRET": SECRET}) == SECRET

    def test_embedded_variables_are_substituted(self) -> None:
        """References inside a longer string are replaced in place."""
        doc = tenant(connectors='bank: {type: fake, base_url: "http://${HOST}:${PORT}/rp"}\n')
        config = parse_config(doc, registry=REGISTRY, env={"HOST": "bank.local", "PORT": "81"})
        assert config.tenants[0].connectors["bank"].settings.base_url == "http://bank.local:81/rp"

    def test_default_applies_when_unset_or_empty(self) -> None:
        """``${VAR:-default}`` gives the default when VAR is unset or empty, else VAR."""
        value = "${CC_SECRET:-default-secret-value}"
        assert self.secret_of(value, {}) == "default-secret-value"
        assert self.secret_of(value, {"CC_SECRET": ""}) == "default-secret-value"
        assert self.secret_of(value, {"CC_SECRET": SECRET}) == SECRET

    def test_escape_writes_a_literal_reference(self) -> None:
        """``$${`` stands for a literal ``${`` and is not looked up."""
        assert self.secret_of("$${NOT_A_VAR}-padding-text", {}) == "${NOT_A_VAR}-padding-text"

    def test_unset_variable_is_one_problem_at_its_path(self) -> None:
        """An unset variable is reported at its value's path, without follow-on errors."""
        doc = tenant(clients=self.CLIENT % "${CALLCENTER_SECRET}")
        assert problems_of(doc) == [
            (
                "tenants[0].clients[0].auth.secret",
                "environment variable CALLCENTER_SECRET is not set",
            )
        ]

    def test_malformed_reference_is_a_problem(self) -> None:
        """An unterminated ``${`` is reported instead of being kept literally."""
        doc = tenant(clients=self.CLIENT % "${CC_SECRET-and-more")
        assert problems_of(doc) == [
            (
                "tenants[0].clients[0].auth.secret",
                "malformed ${...} reference (write ${NAME}, ${NAME:-default} or $${)",
            )
        ]

    def test_unquoted_reference_takes_the_type_of_its_text(self) -> None:
        """An unquoted ``${PORT}`` becomes an int, so it can fill an integer field."""
        doc = "server:\n  port: ${PORT:-8443}\n" + tenant()
        assert parse_config(doc, registry=REGISTRY, env={}).server.port == 8443
        assert parse_config(doc, registry=REGISTRY, env={"PORT": "9001"}).server.port == 9001


class TestConnectors:
    def test_unknown_type_lists_installed_types(self) -> None:
        """A connector type that is not installed is reported with the installed types."""
        doc = tenant(connectors="bank: {type: bankid, base_url: x}\n")
        assert problems_of(doc) == [
            ("tenants[0].connectors.bank.type", "unknown connector type 'bankid' (installed: fake)")
        ]

    def test_missing_type_is_a_problem(self) -> None:
        """A connector without ``type`` is reported at the connector's path."""
        doc = tenant(connectors="bank: {base_url: x}\n")
        assert problems_of(doc) == [("tenants[0].connectors.bank", "missing required key 'type'")]

    def test_setting_errors_have_the_connector_path(self) -> None:
        """The plugin's Config errors are reported under ``tenants[i].connectors.<name>``."""
        doc = tenant(
            connectors="""
            bank: {type: fake, base_url: 42, retries: 3}
            other: {type: fake}
            """
        )
        assert problems_of(doc) == [
            ("tenants[0].connectors.bank", "unknown key 'retries'"),
            ("tenants[0].connectors.bank.base_url", "expected text, got a whole number"),
            ("tenants[0].connectors.other", "missing required key 'base_url'"),
        ]

    def test_connector_problems_do_not_hide_routes_to_them(self) -> None:
        """A route naming a connector whose settings are wrong is not also reported."""
        doc = tenant(
            "routes: [{login_hint: ssn, connector: bank}]\n",
            connectors="bank: {type: fake}\n",
        )
        assert problems_of(doc) == [
            ("tenants[0].connectors.bank", "missing required key 'base_url'")
        ]


class TestSimulators:
    def test_a_simulator_that_is_not_installed_is_refused_with_its_distribution(self) -> None:
        """A production install has no simulators: mounting one names what to install."""
        doc = "simulators: [{type: freja, mount: /_sim/freja}]\n" + tenant()
        assert problems_of(doc) == [
            (
                "simulators[0].type",
                "unknown simulator type 'freja' (installed: none); simulators are not part"
                " of a production install: pip install ciba-gateway-freja-sim",
            )
        ]

    def test_an_installed_simulator_is_accepted(self) -> None:
        """With the simulator in the registry the same document loads."""
        registry = ConnectorRegistry(REGISTRY.connectors, {"freja": lambda settings: None})
        doc = "simulators: [{type: freja, mount: /_sim/freja}]\n" + tenant()
        config = parse_config(doc, registry=registry, env={})
        assert [s.type for s in config.simulators] == ["freja"]


class TestPostInit:
    def test_route_to_missing_connector(self) -> None:
        """A tenant rule failing in __post_init__ is reported at the tenant's path."""
        doc = tenant(
            "routes: [{acr: 'urn:x', connector: nope}]\n",
            connectors="bank: {type: fake, base_url: x}\n",
        )
        assert problems_of(doc) == [
            ("tenants[0].routes[0].connector", "'nope' is not one of this tenant's connectors")
        ]

    def test_cross_reference_and_structural_problems_in_one_pass(self) -> None:
        """A typo in the tenant, a bad value and a dangling route are reported together."""
        doc = tenant(
            "lifetimez: {}\nlifetimes: {poll_interval: soon}\n"
            "routes: [{acr: 'urn:x', connector: nope}]\n",
            connectors="bank: {type: fake, base_url: x}\n",
        )
        assert problems_of(doc, env={}) == [
            ("tenants[0]", "unknown key 'lifetimez' (did you mean 'lifetimes'?)"),
            ("tenants[0].lifetimes.poll_interval", "expected a whole number, got text"),
            ("tenants[0].routes[0].connector", "'nope' is not one of this tenant's connectors"),
        ]

    def test_unset_secret_does_not_hide_the_tenants_rules(self) -> None:
        """An unset ${VAR} is one problem; the route rule of the same tenant is still checked."""
        doc = tenant(
            "routes: [{acr: 'urn:x', connector: nope}]\n",
            connectors="bank: {type: fake, base_url: x}\n",
        ).replace(f'"{SALT}"', '"${UNSET_SALT}"')
        assert problems_of(doc, env={}) == [
            ("tenants[0].subject.salt", "environment variable UNSET_SALT is not set"),
            ("tenants[0].routes[0].connector", "'nope' is not one of this tenant's connectors"),
        ]

    def test_every_problem_has_its_line_and_column(self) -> None:
        """Problems point at the key (or list item) they are about, 1-based."""
        doc = tenant("lifetimes: {poll_interval: soon}\nbogus: 1\n")
        with pytest.raises(ConfigError) as info:
            parse_config(doc, registry=REGISTRY, env={})
        located = {(p.path, p.line, p.column) for p in info.value.problems}
        assert located == {("tenants[0].lifetimes.poll_interval", 7, 17), ("tenants[0]", 8, 5)}

    def test_private_key_jwt_without_keys(self) -> None:
        """A nested Struct's __post_init__ error is reported at that Struct's path."""
        doc = tenant(
            clients="""
            - client_id: pos
              auth: {method: private_key_jwt}
            """
        )
        assert problems_of(doc) == [
            ("tenants[0].clients[0].auth", "private_key_jwt needs exactly one of jwks or jwks_uri")
        ]

    def test_top_level_rule(self) -> None:
        """A rule of the whole file is reported without a path."""
        doc = tenant() + tenant().split("tenants:\n", 1)[1]
        assert problems_of(doc) == [("", "tenant ids must be unique")]

    def test_notification_timeout_must_be_shorter_than_the_lease(self) -> None:
        """A delivery that could outlive its lease (a second sender) is refused."""
        base = tenant()
        short = "notifications: {timeout: 5}\ndriver: {lease_seconds: 15}\n" + base
        config = parse_config(short, registry=REGISTRY, env={})
        assert (config.notifications.timeout, config.driver.lease_seconds) == (5.0, 15.0)
        doc = "notifications: {timeout: 20}\ndriver: {lease_seconds: 15}\n" + base
        assert problems_of(doc) == [
            (
                "",
                "notifications.timeout (20.0 s) must be shorter than driver.lease_seconds (15.0 s)",
            )
        ]

    def test_the_driver_must_be_able_to_renew_its_lease(self) -> None:
        """Tick (and a Redis call) must fit in half the lease, where renewals happen."""
        base = tenant()
        fits = 'store: {url: "redis://127.0.0.1:6379/0", timeout: 1}\n'
        fits += "driver: {lease_seconds: 3, tick: 0.2}\n"
        config = parse_config(
            fits + "notifications: {timeout: 1}\n" + base, registry=REGISTRY, env={}
        )
        assert config.driver.lease_seconds == 3.0
        slow_redis = 'store: {url: "redis://127.0.0.1:6379/0"}\ndriver: {lease_seconds: 4}\n'
        assert problems_of(slow_redis + "notifications: {timeout: 1}\n" + base) == [
            (
                "",
                "driver.tick (0.05 s) + store.timeout (2.0 s) must be shorter than half of "
                "driver.lease_seconds (4.0 s): the driver renews a lease in that half",
            )
        ]
        slow_tick = "driver: {lease_seconds: 4, tick: 2}\nnotifications: {timeout: 1}\n"
        assert problems_of(slow_tick + base) == [
            (
                "",
                "driver.tick (2.0 s) must be shorter than half of driver.lease_seconds "
                "(4.0 s): the driver renews a lease in that half",
            )
        ]


class TestCheckConfigCommand:
    def test_ok_prints_tenant_count_and_exits_zero(self, tmp_path: Path) -> None:
        """A valid file prints OK with its tenant count and returns 0."""
        doc = tenant() + tenant().split("tenants:\n", 1)[1].replace("demo", "other")
        doc = doc.replace("file: k1.jwk", "file: k1.jwk, generate: true")
        path = tmp_path / "gw.yaml"
        path.write_text(doc, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        assert check_config_command(str(path), out=out, err=err) == 0
        assert out.getvalue() == f"OK: {path} (2 tenants)\n"
        assert err.getvalue() == ""

    def test_problems_go_to_stderr_and_exit_one(self, tmp_path: Path) -> None:
        """An invalid file prints each problem on its own line to err and returns 1."""
        path = tmp_path / "gw.yaml"
        path.write_text(tenant("lifetimes: {id_tokn: 60}\nbogus: 1\n"), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        assert check_config_command(str(path), out=out, err=err) == 1
        assert out.getvalue() == ""
        assert err.getvalue().splitlines() == [
            f"{path}:5:22: tenants[0].keys[0].file: key 'k1': file k1.jwk does not exist; set"
            " generate: true or create it with"
            " `ciba-gateway keys generate --alg ES256 --kid k1 --out k1.jwk`",
            f"{path}:7:17: tenants[0].lifetimes: unknown key 'id_tokn' (did you mean 'id_token'?)",
            f"{path}:8:5: tenants[0]: unknown key 'bogus'",
        ]

    def test_default_streams_are_the_process_streams(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without explicit streams the command writes to sys.stderr as it is at call time."""
        assert check_config_command(str(tmp_path / "absent.yaml")) == 1
        captured = capsys.readouterr()
        assert "absent.yaml: No such file or directory" in captured.err
        assert captured.out == ""
