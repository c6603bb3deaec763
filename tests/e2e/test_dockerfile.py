"""The Dockerfile's install step works: run its pip command in a fresh venv (no Docker here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_install_step_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's pip install, run in a new venv, yields a working ciba-gateway command."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "--quiet", *dockerfile_install_targets()],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    out = subprocess.run(
        [
            str(venv / "bin" / "ciba-gateway"),
            "check-config",
            str(ROOT / "config/gateway.example.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    freeze = subprocess.run([str(pip), "freeze"], capture_output=True, text=True, check=True).stdout
    assert "pytest" not in freeze and "ruff" not in freeze
