"""The README's "Approving a payment" against a demo: BankID phone page and SMS page.

Runs the section's commands with curl as printed (port and placeholders filled in),
checks that each page shows the payment exactly as the gateway's renderer writes
it, approves there, and that the token answer and the ID token carry the details.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
from typing import Any

import httpx
import pytest

from ciba_gateway.connector.details import digest, render, sections
from tests.e2e.processes import Process
from tests.e2e.test_demo import (  # running_demo: a demo process of this module's own
    README_BASE,
    Command,
    readme_section,
    running_demo,  # noqa: F401
    shell_commands,
)

pytestmark = pytest.mark.process

SECTION = "Approving a payment"


def run(command: Command, base: str, **values: str) -> str:
    text = command.text.replace(README_BASE, base)
    for name, value in values.items():
        text = text.replace(name, value)
    done = subprocess.run(
        ["bash", "-c", text], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, (text, done.stderr)
    return done.stdout


def details_of(command: Command) -> list[dict[str, Any]]:
    match = re.search(r"'authorization_details=(\[.*?\])'", command.text)
    assert match, command.text
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def redeem(token: Command, base: str, auth_req_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        answer = json.loads(run(token, base, AUTH_REQ_ID=auth_req_id))
        if "access_token" in answer:
            return answer  # type: ignore[no-any-return]
        assert answer["error"] in ("authorization_pending", "slow_down"), answer
        assert time.monotonic() < deadline
        time.sleep(5 if answer["error"] == "authorization_pending" else 10)


def approve_on_bankid_phone(base: str, expected: str) -> None:
    page = httpx.get(f"{base}/_sim/bankid/phone/191212121212").text
    lines = re.findall(r'<div class="line[^"]*">(.*?)</div>', page)
    assert "\n".join(html.unescape(line) for line in lines) == expected
    action = re.search(r'action="([^"]+/approve)"', page).group(1)  # type: ignore[union-attr]
    decided = httpx.post(f"{base}/_sim/bankid/phone/{html.unescape(action)}")
    assert decided.status_code == 303, decided.text


def approve_on_sms_page(process: Process, details: list[dict[str, Any]]) -> None:
    links = re.findall(r"(http://\S+/demo/sms/l/\S+)", process.output())
    assert links, "the console sender printed no link"
    page = httpx.get(links[-1]).text
    for section in sections(details, None):
        for label, value in section.rows:
            cell = f'<th scope="row">{html.escape(label)}</th><td>{html.escape(value)}</td>'
            assert cell in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert httpx.post(links[-1], data={"csrf": csrf, "decision": "approve"}).status_code == 200


def test_payment_walkthrough(running_demo: tuple[Process, str]) -> None:  # noqa: F811
    """BankID and SMS approvals of the README's payment; tokens name the approved details."""
    process, base = running_demo
    bankid, token, sms, decode = shell_commands(readme_section(SECTION))
    details = details_of(bankid)

    started = json.loads(run(bankid, base))
    expected = render(details, client_name="Demo Call Centre", binding_message="Pay 4713")
    approve_on_bankid_phone(base, expected.text)
    answer = redeem(token, base, started["auth_req_id"])
    assert answer["authorization_details"] == details
    assert answer["authorization_details_digest"] == digest(details)

    started = json.loads(run(sms, base))
    approve_on_sms_page(process, details_of(sms))
    answer = redeem(token, base, started["auth_req_id"])
    shown = json.loads(run(decode, base, ID_TOKEN=answer["id_token"]))
    assert shown == details_of(sms)
    assert decode.answers[0].startswith('[{"type": "payment_initiation"')
    assert "audit_decision" in process.output()
