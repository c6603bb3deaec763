"""``ciba-gateway check-config PATH`` as a process: exit status and YAML-path errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.example_config import EXAMPLE, EXAMPLE_SECRETS, example_with_its_files

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
    """Each problem is one stderr line, FILE:LINE:COLUMN: and its YAML path; exit status 1."""
    text = example_with_its_files(tmp_path).read_text()
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
    source = broken.splitlines()
    secret_line = next(i for i, line in enumerate(source, 1) if "AUDIT_UNSET_SECRET" in line)
    assert any(
        line.startswith(f"{path}:21:17: tenants[0].lifetimes.poll_interval:") for line in lines
    )
    assert any(
        line.startswith(f"{path}:{secret_line}:")
        and "tenants[0].clients[0].auth.secret:" in line
        and "AUDIT_UNSET_SECRET" in line
        for line in lines
    ), lines
    surprise_line = len(source) + 1
    assert any(
        line.startswith(f"{path}:{surprise_line}:1: ") and "surprise" in line for line in lines
    ), lines
    assert len(lines) == 3, lines


def test_environment_variable_satisfies_the_reference(tmp_path: Path) -> None:
    """The same ${ENV} reference passes once the variable is set."""
    text = example_with_its_files(tmp_path).read_text()
    patched = text.replace("${ACME_CALLCENTER_SECRET}", "${AUDIT_SET_SECRET}", 1)
    path = tmp_path / "env.yaml"
    path.write_text(patched)
    env = {**EXAMPLE_SECRETS, "AUDIT_SET_SECRET": "from-the-environment-0123456789"}
    result = run_check(path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {path}")


def test_the_example_as_shipped_names_every_file_it_lacks() -> None:
    """Run as the README says (before the files exist), every missing file is a line."""
    result = run_check(EXAMPLE, env=EXAMPLE_SECRETS)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [
        "tenants[0].keys[0].file",
        "tenants[0].connectors.bankid.http.client_cert",
        "tenants[0].connectors.bankid.http.client_key",
        "tenants[0].connectors.bankid.http.ca_file",
    ]
    assert all("does not exist" in line for line in lines)


def test_a_file_that_is_not_a_key_is_reported_with_the_rest(tmp_path: Path) -> None:
    """A broken key file and a broken value of the same file come out of one run."""
    path = example_with_its_files(tmp_path)
    (tmp_path / "etc" / "keys" / "acme-2026-1.jwk").write_text("not json")
    path.write_text(path.read_text().replace("timeout: 10", "timeout: never"))
    result = run_check(path, env=EXAMPLE_SECRETS)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "tenants[0].keys[0].file: key 'acme-2026-1':" in lines[0]
    assert "is not a JSON Web Key" in lines[0]
    assert "tenants[0].connectors.bankid.http.timeout: expected a number, got text" in lines[1]


def _run_check_without_otel(path: Path) -> subprocess.CompletedProcess[str]:
    """check-config in a process where opentelemetry cannot be imported (no extra)."""
    script = (
        "import sys; sys.modules['opentelemetry'] = None; "
        "from ciba_gateway.cli import main; sys.exit(main(['check-config', sys.argv[1]]))"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **EXAMPLE_SECRETS},
        check=False,
    )


def test_tracing_enabled_without_the_extra_is_refused(tmp_path: Path) -> None:
    """tracing.enabled without the otel packages is one line naming the extra; exit 1."""
    path = example_with_its_files(tmp_path)
    path.write_text(path.read_text() + "tracing: {enabled: true}\n")
    result = _run_check_without_otel(path)
    assert result.returncode == 1, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert "tracing.enabled:" in line
    assert "pip install 'ciba-gateway[otel]'" in line
    assert "opentelemetry-sdk" in line and "opentelemetry-exporter-otlp-proto-http" in line


def test_tracing_disabled_needs_no_extra(tmp_path: Path) -> None:
    """A tracing section that leaves tracing off passes without the otel packages."""
    path = example_with_its_files(tmp_path)
    path.write_text(path.read_text() + "tracing: {enabled: false, exporter: console}\n")
    result = _run_check_without_otel(path)
    assert result.returncode == 0, result.stderr


def test_tracing_enabled_with_the_extra_passes(tmp_path: Path) -> None:
    """With the extra installed (the test environment has it) tracing may be enabled."""
    path = example_with_its_files(tmp_path)
    path.write_text(path.read_text() + "tracing: {enabled: true, sample_ratio: 0.25}\n")
    result = run_check(path, env=EXAMPLE_SECRETS)
    assert result.returncode == 0, result.stderr
