"""The Dockerfile's install step works: run its pip command in a fresh venv (no Docker here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Process, free_port
from tests.example_config import EXAMPLE_SECRETS, example_with_its_files

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_install_targets() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"RUN python -m venv /opt/venv && /opt/venv/bin/pip install (.+)", text)
    assert match, "the Dockerfile has no venv install step"
    return match.group(1).split()


def test_dockerfile_is_non_root_with_healthcheck_and_entrypoint() -> None:
    """The image runs as a non-root user, checks /healthz and serves /config/gateway.yaml."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER ciba$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["ciba-gateway"]' in text
    assert '"serve", "--config", "/config/gateway.yaml"' in text
    assert not re.search(r"(?im)^(ENV|ARG)\b.*(secret|password|token)", text)
    copied = re.findall(r"^COPY (\S+)", text, re.M)
    assert "tests" not in " ".join(copied) and "config" not in copied


def test_the_image_is_production_without_simulators() -> None:
    """No simulator distribution is copied, installed, or even in the build context."""
    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+)", text, re.M)
    simulators = sorted(p.parent.name for p in ROOT.glob("connectors/*-sim/pyproject.toml"))

    assert simulators, "no simulator distributions found under connectors/"
    assert not [t for t in dockerfile_install_targets() if t.rstrip("/").endswith("-sim")]
    assert not [c for c in copied if c.rstrip("/").endswith("-sim")]
    assert "connectors/*-sim" in (ROOT / ".dockerignore").read_text().splitlines()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the Dockerfile's (non-editable) pip install done in it."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *dockerfile_install_targets()],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    return venv


def test_install_step_in_a_fresh_venv(venv: Path, tmp_path: Path) -> None:
    """The Dockerfile's pip install, run in a new venv, yields a working ciba-gateway command."""
    pip = venv / "bin" / "pip"
    out = subprocess.run(
        [
            str(venv / "bin" / "ciba-gateway"),
            "check-config",
            str(example_with_its_files(tmp_path)),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **EXAMPLE_SECRETS},
    )
    assert out.returncode == 0, out.stderr
    freeze = subprocess.run([str(pip), "freeze"], capture_output=True, text=True, check=True).stdout
    assert "pytest" not in freeze and "ruff" not in freeze
    assert "-sim" not in freeze, "a simulator distribution is in the production install"


def test_demo_needs_the_simulators_then_runs_from_any_directory(venv: Path, tmp_path: Path) -> None:
    """The production install refuses the demo's simulators by name; with them installed
    (non-editable) ``ciba-gateway demo`` runs its packaged config in ./var."""
    cli = str(venv / "bin" / "ciba-gateway")
    port = free_port()
    refused = subprocess.run(
        [cli, "demo", "--port", str(port)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "simulators[0].type: unknown simulator type 'bankid' (installed: none)" in refused.stderr
    assert "simulators[1].type: unknown simulator type 'freja' (installed: none)" in refused.stderr
    assert "pip install ciba-gateway-bankid-sim" in refused.stderr
    simulators = sorted(str(p.parent) for p in ROOT.glob("connectors/*-sim/pyproject.toml"))
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *simulators],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    demo = Process(["demo", "--port", str(port)], tmp_path / "demo.log", cwd=tmp_path, cli=[cli])
    try:
        demo.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        assert f"state:          {(tmp_path / 'var').resolve()} " in demo.output()
        issuer = httpx.get(f"http://127.0.0.1:{port}/demo/.well-known/openid-configuration")
        assert issuer.json()["issuer"] == f"http://127.0.0.1:{port}/demo"
        assert (tmp_path / "var" / "ciba-gateway.db").is_file()
        assert (tmp_path / "var" / "keys" / "demo-es256-1.jwk").is_file()
        for simulator in ("bankid", "freja"):
            assert httpx.get(f"http://127.0.0.1:{port}/_sim/{simulator}/phone").status_code == 200
    finally:
        assert demo.stop() == 0
