"""The directory hook: which phone numbers a tenant knows.

Two kinds, chosen by ``directory: {type: ...}``:

- ``allow_list``: the numbers (optionally with a display name) are in the config.
- ``http``: the gateway asks a service of the tenant. It POSTs
  ``{"number": "+46701234567"}`` (or GETs ``?number=...``); 200 means known
  (an optional JSON body ``{"name": "..."}`` becomes the ``name`` claim),
  404 means unknown, anything else is an outage.

Without a directory every number the ``allowed_prefixes`` admit is served.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import httpx
import msgspec
from msgspec import Meta

from ciba_gateway.connector import (
    MAX_UPSTREAM_JSON_BYTES,
    ConnectorError,
    ErrorBoundary,
    HttpSettings,
    UpstreamUnavailable,
    build_client,
    call_with_retries,
    decode_json,
    is_transient,
)
from ciba_gateway_smslink.senders import Sleep

__all__ = [
    "E164",
    "AllowListDirectory",
    "AllowedNumber",
    "Directory",
    "DirectoryClient",
    "HttpDirectory",
    "Known",
]

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


class AllowedNumber(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A known number with the name to release as the ``name`` claim."""

    number: str
    name: str | None = None


class AllowListDirectory(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="allow_list"
):
    """``{type: allow_list, numbers: ["+46701234567", {number: ..., name: ...}]}``."""

    numbers: tuple[str | AllowedNumber, ...]

    def __post_init__(self) -> None:
        for entry in self.numbers:
            number = entry if isinstance(entry, str) else entry.number
            if not E164.match(number):
                raise ValueError(f"directory number {number!r} is not E.164 (+46701234567)")


class HttpDirectory(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="http"
):
    """``{type: http, url: ..., method: POST}``: ask the tenant's service."""

    url: Annotated[str, Meta(pattern=r"^https?://")]
    method: Literal["GET", "POST"] = "POST"
    """POST keeps the number out of URLs (and so out of access logs)."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """E.g. ``Authorization`` for the service."""
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)


Directory = AllowListDirectory | HttpDirectory


class _DirectoryErrors(ErrorBoundary):
    """The directory's one error-translation boundary: every HTTP failure is an outage."""

    __slots__ = ()

    def translate(self, exc: Exception) -> ConnectorError | None:
        if isinstance(exc, httpx.HTTPError):
            return UpstreamUnavailable("the phone number directory is unavailable")
        return None


_directory_errors = _DirectoryErrors()


class Known(msgspec.Struct, frozen=True, kw_only=True):
    """A number the directory knows."""

    name: str | None = None


class DirectoryClient:
    """Answers ``lookup(number) -> Known | None`` for the configured directory."""

    def __init__(
        self,
        config: Directory | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._allowed: dict[str, Known] = {}
        self._client: httpx.AsyncClient | None = None
        if isinstance(config, AllowListDirectory):
            for entry in config.numbers:
                if isinstance(entry, str):
                    self._allowed[entry] = Known()
                else:
                    self._allowed[entry.number] = Known(name=entry.name)
        elif isinstance(config, HttpDirectory):
            self._client = build_client(
                "", config.http, transport=transport, headers=dict(config.headers)
            )

    async def lookup(self, number: str) -> Known | None:
        """The directory entry of ``number``, or None when the tenant does not know it.

        Raises:
            UpstreamUnavailable: the directory service failed or answered oddly.
        """
        if self.config is None:
            return Known()
        if isinstance(self.config, AllowListDirectory):
            return self._allowed.get(number)
        return await self._ask(self.config, number)

    async def _ask(self, config: HttpDirectory, number: str) -> Known | None:
        assert self._client is not None

        async def attempt() -> httpx.Response:
            assert self._client is not None
            if config.method == "GET":
                response = await self._client.get(config.url, params={"number": number})
            else:
                response = await self._client.post(config.url, json={"number": number})
            if response.status_code in {502, 503, 504}:
                response.raise_for_status()
            return response

        # A lookup has no side effect: retrying it is safe.
        with _directory_errors:
            response = await call_with_retries(
                attempt, config.http.retries, predicate=is_transient, sleep=self._sleep
            )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"the phone number directory answered HTTP {response.status_code}"
            )
        return Known(name=_name(response))

    async def aclose(self) -> None:
        """Close the HTTP client, if any."""
        if self._client is not None:
            await self._client.aclose()


def _name(response: httpx.Response) -> str | None:
    try:
        body = decode_json(response.content, max_bytes=MAX_UPSTREAM_JSON_BYTES)
    except ValueError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return name if isinstance(name, str) and name.strip() else None
