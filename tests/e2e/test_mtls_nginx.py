"""Mutual TLS end to end: a real nginx terminates TLS and forwards RFC 9440 ``Client-Cert``.

A ``ciba-gateway serve`` process trusts only 127.0.0.2 as a proxy; nginx
(Debian's, installed by scripts/prepare.d/nginx.sh, started here on a free
port with a temporary config) connects to it from 127.0.0.2 and turns the TLS
client certificate into the header with config/nginx/client_cert.js. The
certificates come from the connector test kit's throwaway PKI: the right one
(CA-issued, registered DN), a wrong one (another CA), none, and the
right one sent as a header straight to the gateway from an untrusted peer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ciba_gateway.connector.testing import TestPki, issue_test_pki
from tests.e2e.processes import Process, free_ports
from tests.mtls_kit import PROXY, bank_tenant, client_cert_header

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"
JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
CIBA = "urn:openid:params:grant-type:ciba"


def gateway_yaml(tmp: Path, pki: TestPki, port: int, issuer: str) -> str:
    return f"""
server: {{host: 127.0.0.1, port: {port}, trusted_proxies: ["{PROXY}"]}}
store: {{url: "memory://"}}
logging: {{format: json}}
tenants:{bank_tenant(tmp, pki, issuer)}"""


def nginx_conf(tmp: Path, pki: TestPki, port: int, upstream: int) -> str:
    temp = {k: tmp / f"nginx-{k}" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    return f"""
load_module {JS_MODULE};
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    js_import cert from {ROOT}/config/nginx/client_cert.js;
    js_set $client_cert cert.header;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server};
        ssl_certificate_key {pki.server};
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind {PROXY};
            proxy_set_header Client-Cert $client_cert;
        }}
    }}
}}
"""


@dataclass
class Setup:
    gateway: Process
    direct: str
    """The gateway's own http URL (bypassing nginx)."""
    tls: str
    """nginx's https URL."""
    pki: TestPki
    other: TestPki

    def client(self, bundle: str | None) -> httpx.Client:
        """An httpx client to nginx presenting ``bundle``'s certificate (or none)."""
        context = ssl.create_default_context(cafile=self.pki.ca)
        if bundle is not None:
            context.load_cert_chain(bundle)
        return httpx.Client(base_url=self.tls, verify=context, timeout=10.0)


@contextlib.contextmanager
def nginx(conf: Path, port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen([NGINX, "-c", str(conf), "-e", str(log)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {log.read_text()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    assert Path(NGINX).exists() and Path(JS_MODULE).exists(), "run scripts/prepare.sh"
    tmp = tmp_path_factory.mktemp("mtls")
    pki = issue_test_pki(tmp)
    (tmp / "other").mkdir()
    # Another CA with other names: a CA of the same name would make nginx itself refuse
    # the chain (signature failure) before the gateway sees it; the same-DN case is
    # tested in tests/integration/test_mtls.py.
    other = issue_test_pki(tmp / "other", name="Other")
    gw_port, tls_port = free_ports(2)
    tls = f"https://127.0.0.1:{tls_port}"
    config = tmp / "gateway.yaml"
    config.write_text(gateway_yaml(tmp, pki, gw_port, tls))
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, pki, tls_port, gw_port))
    gateway = Process(
        ["serve", "--config", str(config), "--port", str(gw_port)], tmp / "gateway.log"
    )
    try:
        direct = f"http://127.0.0.1:{gw_port}"
        gateway.wait_http(f"{direct}/healthz")
        with nginx(conf, tls_port, tmp / "nginx.log"):
            yield Setup(gateway=gateway, direct=direct, tls=tls, pki=pki, other=other)
    finally:
        gateway.stop()


def start(http: httpx.Client) -> httpx.Response:
    return http.post(
        "/bank/bc-authorize",
        data={"client_id": "bank-rp", "scope": "openid profile", "login_hint": "ssn:199001011239"},
    )


def redeem(http: httpx.Client, auth_req_id: str) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        response = http.post(
            "/bank/token",
            data={"client_id": "bank-rp", "grant_type": CIBA, "auth_req_id": auth_req_id},
        )
        if response.json().get("error") != "authorization_pending":
            return response
        assert time.monotonic() < deadline, "the request was never approved"
        time.sleep(1.1)


def test_right_certificate_gets_a_bound_token(setup: Setup) -> None:
    """The CA-issued certificate with the registered DN: tokens bound to that certificate."""
    with setup.client(setup.pki.client) as http:
        started = start(http)
        assert started.status_code == 200, started.text
        tokens = redeem(http, started.json()["auth_req_id"])
        assert tokens.status_code == 200, tokens.text
        bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        info = http.get("/bank/userinfo", headers=bearer)
    assert info.status_code == 200, info.text
    assert info.json()["name"] == "Karl Karlsson"
    with setup.client(setup.other.client) as other:
        stolen = other.get("/bank/userinfo", headers=bearer)
    assert stolen.status_code == 401
    assert stolen.json()["error"] == "invalid_token"
    with setup.client(None) as bare:
        unbound = bare.get("/bank/userinfo", headers=bearer)
    assert unbound.status_code == 401


def test_wrong_certificate_is_invalid_client(setup: Setup) -> None:
    """A certificate of another CA: nginx passes it on, the gateway refuses it."""
    with setup.client(setup.other.client) as http:
        response = start(http)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_no_certificate_is_invalid_client_and_a_typed_header_is_dropped(setup: Setup) -> None:
    """Without a TLS client certificate nginx sends no Client-Cert, even if the client typed one."""
    forged = {"Client-Cert": client_cert_header(setup.pki.client)}
    with setup.client(None) as http:
        plain = start(http)
        smuggled = http.post(
            "/bank/bc-authorize",
            data={"client_id": "bank-rp", "scope": "openid", "login_hint": "ssn:199001011239"},
            headers=forged,
        )
    for response in (plain, smuggled):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_header_from_an_untrusted_peer_is_refused_and_logged(setup: Setup) -> None:
    """The right certificate as a header, straight to the gateway from 127.0.0.1."""
    response = httpx.post(
        f"{setup.direct}/bank/bc-authorize",
        data={"client_id": "bank-rp", "scope": "openid", "login_hint": "ssn:199001011239"},
        headers={"Client-Cert": client_cert_header(setup.pki.client)},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = [
            json.loads(line) for line in setup.gateway.output().splitlines() if line.startswith("{")
        ]
        if any(e.get("event") == "client_cert_from_untrusted_peer" for e in events):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no refusal logged:\n{setup.gateway.output()}")
    logged = next(e for e in events if e.get("event") == "client_cert_from_untrusted_peer")
    assert logged["peer"] == "127.0.0.1"
