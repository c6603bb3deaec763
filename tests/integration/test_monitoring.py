"""The shipped Grafana dashboard and Prometheus alert rules (deploy/) fit the gateway.

promtool (Debian's prometheus package; scripts/prepare.d/prometheus.sh installs it)
checks the rules and runs their unit tests; every metric a panel or a rule names must be
on the app's /metrics; docs/operations.md must describe every panel and every alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "ciba-gateway.json"
OPERATIONS = ROOT / "docs" / "operations.md"
NOT_OURS = {"up"}
"""Series Prometheus makes itself for every scrape target."""


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/prepare.sh (Debian's prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def dashboard_panels() -> list[dict]:
    return json.loads(DASHBOARD.read_text())["panels"]


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def expressions() -> list[str]:
    panels = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    return panels + [rule["expr"] for rule in rules()]


def test_promtool_checks_the_rules() -> None:
    """``promtool check rules`` accepts the file."""
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    """Each alert fires on the series built for it and stays quiet otherwise."""
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in rules()}


async def test_every_metric_named_is_on_metrics(harness: Harness) -> None:
    """Every metric of the dashboard's and the rules' expressions is exposed by the app."""
    scrape = (await harness.client.get("/metrics")).text
    exposed: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", scrape, re.M):
        exposed.add(name)
        if kind == "histogram":
            exposed |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    named = {
        word
        for expr in expressions()
        for word in re.findall(r"\b(ciba_[a-z0-9_]+|up)\b", re.sub(r'"[^"]*"', '""', expr))
    }
    assert {"ciba_pending_flows", "ciba_flow_duration_seconds_bucket"} <= named
    assert {"ciba_store_errors_total", "ciba_notifications_total"} <= named
    assert named - NOT_OURS <= exposed, named - NOT_OURS - exposed


def test_operations_doc_describes_every_panel_and_alert() -> None:
    """docs/operations.md names each panel title and each alert."""
    text = OPERATIONS.read_text()
    for panel in dashboard_panels():
        assert f"**{panel['title']}**" in text, panel["title"]
    for rule in rules():
        assert f"`{rule['alert']}`" in text, rule["alert"]


async def test_approval_latency_is_observed_per_connector(harness: Harness, clock) -> None:
    """An approved flow adds its seconds from bc-authorize to approval to the histogram."""
    started = await harness.bc_authorize({"scope": "openid", "login_hint": "ssn:199001011239"})
    assert started.status_code == 200, started.text
    clock.advance(7)
    await harness.drive(3)
    scrape = (await harness.client.get("/metrics")).text
    labels = 'connector="example",outcome="approved",tenant="acme"'
    assert re.search(rf"^ciba_flow_duration_seconds_count\{{{labels}\}} 1\.0$", scrape, re.M)
    total = re.search(rf"^ciba_flow_duration_seconds_sum\{{{labels}\}} (\S+)$", scrape, re.M)
    assert total and 7.0 <= float(total.group(1)) < 60, scrape
