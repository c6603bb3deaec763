"""`ciba-gateway demo`: follow what it prints and what the README says, as a person would.

The README walkthrough test reads the README's shell blocks and runs each command with
curl, so the README cannot drift from the demo: commands as printed (only the port and
the AUTH_REQ_ID / ACCESS_TOKEN placeholders filled in), answers checked against the
``# {...}`` comments under them, and the prose's steps on the phone pages done in between.
"""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ciba_gateway import demo
from tests.e2e.processes import CLI, Process, free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
README_BASE = "http://127.0.0.1:8080"
WALKTHROUGH = "A five-minute walkthrough"


@dataclass
class Command:
    """One shell command of a README block and the ``# ...`` answer comments under it."""

    text: str
    answers: list[str] = field(default_factory=list)


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def shell_commands(section: str) -> list[Command]:
    """The commands of the section's ``sh`` blocks, continuation lines joined."""
    commands: list[Command] = []
    for block in re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S):
        pending = ""
        for line in block.splitlines():
            if line.startswith("#"):
                commands[-1].answers.append(line.lstrip("# ").strip())
            elif line.endswith("\\"):
                pending += line[:-1]
            elif line.strip():
                commands.append(Command(" ".join((pending + line).split())))
                pending = ""
    return commands


def answer_shapes(comment: str) -> Iterator[tuple[dict, bool]]:
    """The JSON objects a comment shows: (object, partial) - partial when it ends in ``,…}``."""
    for shape in re.findall(r"\{.*?\}", comment):
        partial = ",…}" in shape
        yield json.loads(shape.replace(",…}", "}")), partial


def matches(answer: dict, shape: dict, partial: bool) -> bool:
    """Same keys (a subset when partial); values equal, ``…`` standing for any text."""
    if not partial and set(answer) != set(shape):
        return False
    for key, expected in shape.items():
        if isinstance(expected, str) and expected.endswith("…"):
            if not str(answer.get(key, "")).startswith(expected[:-1]):
                return False
        elif answer.get(key) != expected:
            return False
    return True


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, str]]:
    """One demo process in an empty directory, and its base URL."""
    cwd = tmp_path_factory.mktemp("demo")
    port = free_port()
    process = Process(["demo", "--port", str(port)], cwd / "demo.log", cwd=cwd)
    try:
        process.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        assert process.stop() == 0


def test_banner_shows_credentials_state_and_the_readmes_commands(
    running_demo: tuple[Process, str],
) -> None:
    """The banner's issuer, client, state directory and pages work; its curls are the README's."""
    process, base = running_demo
    banner = process.output()
    issuer = re.search(r"issuer:\s+(\S+)", banner).group(1)
    assert issuer == f"{base}/demo"
    state = Path(re.search(r"state:\s+(\S+)", banner).group(1))
    assert state == (process.log_path.parent / "var").resolve()
    assert (state / "keys").is_dir() and (state / "ciba-gateway.db").is_file()
    for page in re.findall(r"(http://\S+/_sim/\w+/phone)", banner):
        assert httpx.get(page).status_code == 200
    printed = [
        " ".join(m.replace("\\\n", " ").split())
        for m in re.findall(r"^   (curl (?:.*\\\n)*.*)$", banner, re.M)
    ]
    readme = {
        c.text.replace(README_BASE, base)
        for c in shell_commands(readme_section("A five-minute walkthrough"))
    }
    assert len(printed) == 3
    assert set(printed) <= readme, set(printed) - readme
    assert "--data-urlencode 'login_hint=tel:+46701234567'" in banner


class Reader:
    """Follows the walkthrough: runs its commands, and does by hand what its prose says."""

    def __init__(self, process: Process, base: str, commands: list[Command]) -> None:
        self.process = process
        self.base = base
        self.token_command = next(c for c in commands if "grant-type:ciba" in c.text)
        self.auth_req_id: str | None = None
        self.login_hint = ""
        self.access_token = ""
        self.tokens: list[tuple[str, dict]] = []  # (login_hint, token answer)

    def run(self, command: Command) -> dict:
        text = command.text.replace(README_BASE, self.base)
        text = text.replace("AUTH_REQ_ID", self.auth_req_id or "").replace(
            "ACCESS_TOKEN", self.access_token
        )
        done = subprocess.run(
            ["bash", "-c", text], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, (text, done.stderr)
        return json.loads(done.stdout)

    def follow(self, command: Command) -> None:
        if "/bc-authorize" in command.text:
            self.redeem()
            answer = self.run(command)
            for shape, partial in answer_shapes(" ".join(command.answers)):
                assert matches(answer, shape, partial), (command.text, answer)
            assert "auth_req_id" in answer, (command.text, answer)
            self.auth_req_id = answer["auth_req_id"]
            self.login_hint = re.search(r"login_hint=([^' ]+)", command.text).group(1)
            self.approve_by_hand(command.text)
        elif "grant-type:ciba" in command.text:
            self.redeem(command)
        else:
            answer = self.run(command)
            assert isinstance(answer, dict) and "error" not in answer, (command.text, answer)
            if command.text.endswith("/jwks"):
                self.check_id_tokens(KeySet.import_key_set(answer))

    def approve_by_hand(self, text: str) -> None:
        """What the prose says to do on the phone pages."""
        if self.login_hint == "ssn:191212121212" and "se:bankid" in text:
            index = httpx.get(f"{self.base}/_sim/bankid/phone").text
            person = re.search(r'href="(phone/191212121212)".*?Tolvan Tolvansson', index)
            assert person, "the phone page lists no Tolvan Tolvansson to pick"
            page = httpx.get(f"{self.base}/_sim/bankid/{person.group(1)}").text
            assert ">Identify</button>" in page and ">Cancel</button>" in page
            action = re.search(r'action="([^"]+/approve)"', page).group(1)
            decided = httpx.post(f"{self.base}/_sim/bankid/phone/{html.unescape(action)}")
            assert decided.status_code == 303, decided.text
        elif self.login_hint.startswith("tel:"):
            links = re.findall(r"(http://\S+/demo/sms/l/\S+)", self.process.output())
            assert links, "the console sender printed no link"
            page = httpx.get(links[-1])
            assert "Call 4712" in page.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            decided = httpx.post(links[-1], data={"csrf": csrf, "decision": "approve"})
            assert decided.status_code == 200, decided.text

    def redeem(self, command: Command | None = None) -> None:
        """Poll with the README's token command until tokens, at the interval it says."""
        if self.auth_req_id is None:
            return
        command = command or self.token_command
        shapes = list(answer_shapes(" ".join(command.answers)))
        interval, deadline = 5.0, time.monotonic() + 60
        while True:
            answer = self.run(command)
            if "access_token" in answer:
                break
            assert answer.get("error") in ("authorization_pending", "slow_down"), answer
            assert any(matches(answer, s, p) for s, p in shapes if "error" in s), answer
            if answer["error"] == "slow_down":
                interval += 5
            assert time.monotonic() < deadline, "no tokens within 60 s"
            time.sleep(interval)
        assert matches(answer, *shapes[-1]), answer
        self.tokens.append((self.login_hint, answer))
        self.access_token = answer["access_token"]
        self.auth_req_id = None

    def check_id_tokens(self, keys: KeySet) -> None:
        """Every ID token so far verifies against the JWKS the README fetches."""
        for _, answer in self.tokens:
            jwt.decode(answer["id_token"], keys, algorithms=["ES256"])


def test_readme_walkthrough_runs_against_the_demo(running_demo: tuple[Process, str]) -> None:
    """Every command of the README's walkthrough, in order, does what the README says."""
    process, base = running_demo
    commands = shell_commands(readme_section(WALKTHROUGH))
    assert len(commands) >= 8
    reader = Reader(process, base, commands)
    for command in commands:
        reader.follow(command)
    reader.redeem()
    keys = KeySet.import_key_set(httpx.get(f"{base}/demo/jwks").json())

    def claims(login_hint: str, acr_values: str) -> dict:
        for hint, answer in reader.tokens:
            if hint != login_hint:
                continue
            decoded = jwt.decode(answer["id_token"], keys, algorithms=["ES256"]).claims
            if decoded["acr"].startswith(acr_values):
                return decoded
        raise AssertionError(f"no tokens for {login_hint} {acr_values}")

    assert claims("ssn:199001011239", "urn:grn:authn:se:bankid")["name"] == "Karl Karlsson"
    assert claims("ssn:191212121212", "urn:grn:authn:se:bankid")["given_name"] == "Tolvan"
    assert claims("ssn:199001011239", "urn:grn:authn:se:frejaid:plus")["given_name"] == "Karl"
    chained = claims("ssn:199001011239", "urn:grn:authn:no:bankid")
    assert (chained["name"], chained["ssn"]) == ("Karl Karlsson", "199001011239")
    # The console: no access line per simulator poll; the server's own lines in one format.
    output = process.output()
    assert re.search(r"^\S+Z \[info\s*\] request .*endpoint=bc-authorize", output, re.M)
    assert not re.search(r"\] request .*endpoint=/rp", output)
    assert re.search(r"^\S+Z \[info\s*\] Started server process", output, re.M), output
    assert "uvicorn.error - " not in output
    sms = claims("tel:+46701234567", "urn:ciba-gateway:acr:sms-link")
    assert sms["phone_number"] == "+46701234567" and sms["amr"] == ["sms"]
    assert sms["phone_number_verified"] is True


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
