"""`ciba-gateway demo`: follow what it prints and get an ID token, as a person would."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ciba_gateway import demo
from tests.e2e.processes import CLI, Process, free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_a_working_flow(tmp_path: Path) -> None:
    """The banner's credentials and curl commands complete BankID, Freja and SMS-link flows."""
    port = free_port()
    demo = Process(["demo", "--port", str(port)], tmp_path / "demo.log", cwd=tmp_path)
    try:
        demo.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30)
        banner = demo.output()
        issuer = re.search(r"issuer:\s+(\S+)", banner).group(1)
        client_id = re.search(r"client_id:\s+(\S+)", banner).group(1)
        secret = re.search(r"client_secret:\s+(\S+)", banner).group(1)
        phone = re.search(r"(http://\S+/_sim/bankid/phone)", banner).group(1)
        assert issuer == f"http://127.0.0.1:{port}/demo"
        assert f"{issuer}/bc-authorize" in banner and f"{issuer}/token" in banner
        assert httpx.get(phone).status_code == 200
        assert f"state:          {(tmp_path / 'var').resolve()} " in banner
        assert (tmp_path / "var" / "keys").is_dir()
        assert (tmp_path / "var" / "ciba-gateway.db").exists()

        started = httpx.post(
            f"{issuer}/bc-authorize",
            auth=(client_id, secret),
            data={
                "scope": "openid profile ssn",
                "login_hint": "ssn:199001011239",
                "acr_values": "urn:grn:authn:se:bankid",
                "binding_message": "Call 4711",
            },
        )
        assert started.status_code == 200, started.text
        body = started.json()
        deadline = time.monotonic() + 30
        token: dict = {}
        while time.monotonic() < deadline:
            time.sleep(body["interval"])
            response = httpx.post(
                f"{issuer}/token",
                auth=(client_id, secret),
                data={
                    "grant_type": "urn:openid:params:grant-type:ciba",
                    "auth_req_id": body["auth_req_id"],
                },
            )
            token = response.json()
            if response.status_code == 200:
                break
            assert token["error"] == "authorization_pending", token
        keys = KeySet.import_key_set(httpx.get(f"{issuer}/jwks").json())
        claims = jwt.decode(token["id_token"], keys, algorithms=["ES256"]).claims
        assert claims["name"] == "Karl Karlsson"
        assert claims["acr"] == "urn:grn:authn:se:bankid"

        # The README's Freja and SMS-link walkthroughs, on the same demo.
        auth = (client_id, secret)
        freja = httpx.post(
            f"{issuer}/bc-authorize",
            auth=auth,
            data={
                "scope": "openid profile",
                "login_hint": "ssn:199001011239",
                "acr_values": "urn:grn:authn:se:frejaid:plus",
            },
        )
        assert freja.status_code == 200, freja.text
        sms = httpx.post(
            f"{issuer}/bc-authorize",
            auth=auth,
            data={
                "scope": "openid phone",
                "login_hint": "tel:+46701234567",
                "binding_message": "Call 4712",
            },
        )
        assert sms.status_code == 200, sms.text
        link = re.search(r"(http://\S+/demo/sms/l/\S+)", demo.output())
        assert link, "the console sender printed no link"
        page = httpx.get(link.group(1))
        assert "Call 4712" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        decided = httpx.post(link.group(1), data={"csrf": csrf, "decision": "approve"})
        assert decided.status_code == 200, decided.text
        sms_token = redeem(issuer, auth, sms.json()["auth_req_id"])
        sms_claims = jwt.decode(sms_token["id_token"], keys, algorithms=["ES256"]).claims
        assert sms_claims["phone_number"] == "+46701234567"
        assert sms_claims["amr"] == ["sms"]
        freja_token = redeem(issuer, auth, freja.json()["auth_req_id"])
        freja_claims = jwt.decode(freja_token["id_token"], keys, algorithms=["ES256"]).claims
        assert freja_claims["acr"] == "urn:grn:authn:se:frejaid:plus"
        assert freja_claims["given_name"] == "Karl"
    finally:
        assert demo.stop() == 0


def redeem(issuer: str, auth: tuple[str, str], auth_req_id: str) -> dict:
    """Poll the token endpoint at the demo's interval until tokens or a final error."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.post(
            f"{issuer}/token",
            auth=auth,
            data={"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id},
        )
        body = response.json()
        if response.status_code == 200:
            return body
        assert body["error"] == "authorization_pending", body
        time.sleep(5)
    raise AssertionError("no tokens within 30 s")


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_port_in_use_is_reported_first_and_nothing_starts(tmp_path: Path, command: str) -> None:
    """With the port taken, demo and serve say so in one line, print no banner, write nothing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["demo", "--port", str(port)]
        if command == "serve":
            config = tmp_path / "gateway.yaml"
            config.write_text(
                demo.config_path().read_text().replace("${DEMO_STATE_DIR:-var}", "state")
            )
            args = ["serve", "--config", str(config), "--port", str(port)]
        run = subprocess.run(
            [*CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.splitlines() == [run.stderr.strip()]
    assert f"127.0.0.1:{port} is already in use" in run.stderr
    assert not (tmp_path / "var").exists() and not (tmp_path / "state").exists()
