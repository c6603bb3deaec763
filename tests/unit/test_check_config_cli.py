"""``ciba-gateway check-config PATH`` as a process: exit status and YAML-path errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.example_config import EXAMPLE_SECRETS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def run_check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ciba_gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_broken_config_exits_one_with_every_problem_and_its_path(tmp_path: Path) -> None:
    """Each problem is one stderr line starting with its YAML path; the exit status is 1."""
    text = (CONFIG_DIR / "gateway.example.yaml").read_text()
    broken = text.replace("poll_interval: 5", "poll_interval: 0", 1).replace(
        "${ACME_CALLCENTER_SECRET}", "${AUDIT_UNSET_SECRET}", 1
    )
    assert broken != text
    path = tmp_path / "broken.yaml"
    path.write_text(broken + "surprise: true\n")
    result = run_check(path, env=EXAMPLE_SECRETS)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("tenants[0].lifetimes.poll_interval:") for line in lines)
    assert any(
        line.startswith("tenants[0].clients[0].auth.secret:") and "AUDIT_UNSET_SECRET" in line
        for line in lines
    ), lines
    assert any("surprise" in line for line in lines), lines


def test_environment_variable_satisfies_the_reference(tmp_path: Path) -> None:
    """The same ${ENV} reference passes once the variable is set."""
    text = (CONFIG_DIR / "gateway.example.yaml").read_text()
    patched = text.replace("${ACME_CALLCENTER_SECRET}", "${AUDIT_SET_SECRET}", 1)
    path = tmp_path / "env.yaml"
    path.write_text(patched)
    env = {**EXAMPLE_SECRETS, "AUDIT_SET_SECRET": "from-the-environment-0123456789"}
    result = run_check(path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {path}")
