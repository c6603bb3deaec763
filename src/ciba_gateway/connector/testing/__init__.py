"""The connector contract kit: what a connector author's tests are built from.

- ``contract``: the suites a connector's tests subclass and run against its
  simulator (``ConnectorContract``, ``UpstreamContract``, ``IdentityContract``) and
  the ``Subject`` that wires them to it.
- ``fakes``: ``FakeClock``, ``FakeSleep``, ``MemoryState``, ``Resolutions`` and
  ``make_deps()``, the ``ConnectorDeps`` the gateway would hand over.
- ``upstream``: ``SimulatorTransport``, a simulator's ASGI app served in-process
  with a real server's failures, and ``RecordingTransport``, an httpx transport that
  records what the connector sent and injects upstream faults.
- ``pki`` / ``servers``: a throwaway PKI, loopback HTTP and mutual-TLS servers for a
  simulator, ``RawUpstream`` (exact answer bytes, resets, stalls: the wire's failures),
  and Debian's Chromium through Playwright for phone-page tests::

      pki = issue_test_pki(tmp_path)
      with serve_mutual_tls(create_simulator(settings), pki) as url:
          connector = MyConnector(Config(base_url=url, http={"client_cert": pki.client,
                                                             "ca_file": pki.ca}), deps)

Not for production use: keys are unencrypted files, certificates last two days.
"""

from ciba_gateway.connector.testing.contract import (
    EXAMPLE_DETAILS,
    OUTCOMES,
    ConnectorContract,
    IdentityContract,
    Settle,
    Subject,
    UpstreamContract,
    names_the_hint,
)
from ciba_gateway.connector.testing.fakes import (
    FakeClock,
    FakeSleep,
    MemoryState,
    Resolutions,
    make_deps,
)
from ciba_gateway.connector.testing.pki import (
    TestPki,
    issue_self_signed_certificate,
    issue_test_pki,
)
from ciba_gateway.connector.testing.servers import (
    CHROMIUM,
    RawUpstream,
    chromium,
    serve_http,
    serve_mutual_tls,
)
from ciba_gateway.connector.testing.upstream import (
    FAULTS,
    Fault,
    RecordingTransport,
    SimulatorTransport,
)

__all__ = [
    "CHROMIUM",
    "EXAMPLE_DETAILS",
    "FAULTS",
    "OUTCOMES",
    "ConnectorContract",
    "FakeClock",
    "FakeSleep",
    "Fault",
    "IdentityContract",
    "MemoryState",
    "RawUpstream",
    "RecordingTransport",
    "Resolutions",
    "Settle",
    "SimulatorTransport",
    "Subject",
    "TestPki",
    "UpstreamContract",
    "chromium",
    "issue_self_signed_certificate",
    "issue_test_pki",
    "make_deps",
    "names_the_hint",
    "serve_http",
    "serve_mutual_tls",
]
