"""The ``ciba-gateway`` command: serve | demo | check-config | keys | simulate."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ciba_gateway import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ciba-gateway",
        description="An OpenID Connect CIBA gateway in front of national eID schemes.",
        epilog="ciba-gateway COMMAND --help shows the options of a command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway", description="Run the gateway.")
    serve.add_argument("--config", required=True, help="gateway YAML file")
    serve.add_argument("--host", help="bind address (default: server.host of the config)")
    serve.add_argument("--port", type=int, help="port (default: server.port of the config)")
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    serve.add_argument(
        "--server",
        choices=["granian", "uvicorn"],
        default="granian",
        help="ASGI server (default granian, the faster one here; see BENCHMARKS.md)",
    )

    demo = sub.add_parser(
        "demo",
        help="run the demo: gateway + simulators on one port",
        description="Run the demo: the gateway and the upstream simulators in one process.",
    )
    demo.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    demo.add_argument(
        "--config", help="run this config instead of the demo's own (shipped in the package)"
    )
    demo.add_argument(
        "--state-dir",
        default="var",
        help="directory for the database, signing keys and certificates (default ./var)",
    )

    check = sub.add_parser(
        "check-config",
        help="check a config file as serve would, print every problem",
        description="Check a config file and the key and TLS files it names; print every "
        "problem as FILE:LINE:COLUMN: path: message. Exit 0 when it is fine, 1 if not.",
    )
    check.add_argument("path", help="the gateway YAML file")

    sub.add_parser("config-schema", help="print the JSON Schema of the config file")

    keys = sub.add_parser("keys", help="signing key tools")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    gen = keys_sub.add_parser("generate", help="make a new private JWK (a signing key)")
    gen.add_argument(
        "--alg",
        default="ES256",
        choices=["ES256", "RS256", "PS256", "EdDSA"],
        help="signing algorithm (default ES256)",
    )
    gen.add_argument("--kid", required=True, help="key id, as the config's keys[].kid names it")
    gen.add_argument(
        "--out",
        type=Path,
        help="write it to this file (mode 0600, directories created, never overwritten) "
        "instead of printing it",
    )

    reload = sub.add_parser("reload", help="ask a running gateway to reload its config (SIGHUP)")
    reload.add_argument("pid", type=int, help="process id of the ciba-gateway serve process")

    sim = sub.add_parser("simulate", help="run an upstream simulator on its own")
    sim.add_argument("name", help="simulator type, e.g. bankid")
    sim.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    sim.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sim.add_argument("--config", help="take settings from this config's simulators entry")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        from ciba_gateway.cli_check import check_config_command

        return check_config_command(args.path)
    if args.command == "config-schema":
        from ciba_gateway.config.reference import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.command == "keys":
        return _keys_generate(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "reload":
        try:
            os.kill(args.pid, signal.SIGHUP)
        except ProcessLookupError:
            print(f"no process {args.pid}", file=sys.stderr)
            return 1
        return 0
    return 2


def _keys_generate(args: argparse.Namespace) -> int:
    from ciba_gateway.tokens.keys import generate_private_jwk, write_private_jwk

    if args.out is None:
        print(json.dumps(generate_private_jwk(args.alg, args.kid), indent=2))
        return 0
    try:
        write_private_jwk(args.out, args.alg, args.kid)
    except FileExistsError:
        print(f"{args.out} exists; a key file is never overwritten", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.alg}, kid {args.kid}, mode 0600)", file=sys.stderr)
    return 0


def _load(path: str | Path, env: Mapping[str, str] | None = None):
    from ciba_gateway.config.load import format_problems
    from ciba_gateway.connector import load_registry
    from ciba_gateway.errors import ConfigError
    from ciba_gateway.preflight import check_config

    try:
        return check_config(path, registry=load_registry(), env=env)
    except ConfigError as exc:
        print(f"{path}: invalid configuration\n{format_problems(exc, path)}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from ciba_gateway.observability import configure_logging
    from ciba_gateway.servers import PortUnavailableError, bind_listener, run_granian, run_uvicorn

    config = _load(args.config)
    if config is None:
        return 1
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    try:
        bind_listener(host, port).close()  # the server binds again; fail here, before it starts
    except PortUnavailableError as exc:
        print(exc, file=sys.stderr)
        return 1
    configure_logging(config.logging.format, config.logging.level)
    workers = args.workers or config.server.workers
    run = run_granian if args.server == "granian" else run_uvicorn
    return run(Path(args.config).resolve(), host, port, workers)


def _demo(args: argparse.Namespace) -> int:
    import uvicorn

    from ciba_gateway import demo
    from ciba_gateway.app import create_app
    from ciba_gateway.observability import configure_logging
    from ciba_gateway.servers import PortUnavailableError, bind_listener

    try:
        listener = bind_listener("127.0.0.1", args.port)  # before any state is touched
    except PortUnavailableError as exc:
        print(f"{exc}; pick another with --port N (make demo PORT=N)", file=sys.stderr)
        return 1
    with listener:
        state_dir = Path(args.state_dir).resolve()
        config = _load(args.config or demo.config_path(), demo.environment(args.port, state_dir))
        if config is None:
            return 1
        configure_logging("console", "info")
        app = create_app(config)
        print(demo.banner(config, args.port, state_dir), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit 0 after uvicorn's drain
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
        server.run(sockets=[listener])
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import uvicorn

    from ciba_gateway.connector import load_registry

    registry = load_registry()
    factory = registry.simulators.get(args.name)
    if factory is None:
        known = ", ".join(sorted(registry.simulators)) or "none installed"
        print(f"unknown simulator {args.name!r} (installed: {known})", file=sys.stderr)
        return 1
    settings: dict = {}
    if args.config:
        config = _load(args.config)
        if config is None:
            return 1
        for sim in config.simulators:
            if sim.type == args.name:
                settings = dict(sim.settings)
                break
    # A simulator is called directly (no proxy in front): X-Forwarded-* is not read.
    uvicorn.run(
        factory(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=False,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
