"""Every configuration file shipped (config/ and the packaged demo) passes check-config."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ciba_gateway import demo
from ciba_gateway.cli_check import check_config_command
from tests.example_config import EXAMPLE, EXAMPLE_SECRETS, example_with_its_files

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SHIPPED = [*sorted(CONFIG_DIR.glob("*.yaml")), demo.config_path()]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_is_valid(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config accepts the file (the example with its secrets and files in place)."""
    for name, value in EXAMPLE_SECRETS.items():
        monkeypatch.setenv(name, value)
    if path == EXAMPLE:
        path = example_with_its_files(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(str(path), out=out, err=err) == 0, err.getvalue()
    assert out.getvalue().startswith("OK:")


def test_there_are_config_files_to_check() -> None:
    """The annotated example is in config/, the demo configuration in the package."""
    assert (CONFIG_DIR / "gateway.example.yaml").is_file()
    assert demo.config_path().is_file()


def test_the_example_has_no_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without its secrets in the environment the example is refused, naming each variable."""
    for name in EXAMPLE_SECRETS:
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(str(EXAMPLE), out=out, err=err) == 1
    for name in EXAMPLE_SECRETS:
        assert f"environment variable {name} is not set" in err.getvalue()


def test_check_config_reports_every_problem_with_its_path(tmp_path: Path) -> None:
    """A broken copy of the example config fails with one line per problem."""
    text = (CONFIG_DIR / "gateway.example.yaml").read_text()
    broken = text.replace("method: client_secret_basic", "method: magic").replace(
        "poll_interval: 5", "poll_interval: 0"
    )
    path = tmp_path / "broken.yaml"
    path.write_text(broken + "surprise: true\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(str(path), out=out, err=err) == 1
    lines = err.getvalue().strip().splitlines()
    assert any(": tenants[0].clients[0].auth.method: expected one of" in line for line in lines)
    assert any(": tenants[0].lifetimes.poll_interval: expected" in line for line in lines)
    assert any("surprise" in line for line in lines)
    assert all(line.startswith(f"{path}:") for line in lines), lines
