"""Tenant signing keys and the JWKS.

Each tenant key is a private JWK in its own file (``KeyConfig.file``). With
``generate: true`` a missing file is created on first start (mode 0600, written
atomically and never overwritten, so concurrent workers agree on one key). Every
configured key is published in the JWKS, whatever its state; only the
``current`` key signs. Rotation is operator-driven: add a ``next`` key
(published ahead of use), promote it to ``current``, and keep the old one as
``retired`` until the tokens it signed have expired.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwk, jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jws import JWSRegistry

from ciba_gateway.connector import check_json, decode_json
from ciba_gateway.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from joserfc.jwk import Key
    from joserfc.jws import JWSAlgModel

    from ciba_gateway.config.model import KeyConfig, TenantConfig

__all__ = [
    "AllowListRegistry",
    "SigningKey",
    "TenantKeys",
    "TokenVerificationError",
    "generate_private_jwk",
    "key_file_problem",
    "load_tenant_keys",
    "write_private_jwk",
]

_RSA_MIN_BITS = 2048

# kty and (for curve keys) crv each configured alg requires.
_KEY_SHAPES: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {
        "ES256": ("EC", "P-256"),
        "RS256": ("RSA", None),
        "PS256": ("RSA", None),
        "EdDSA": ("OKP", "Ed25519"),
    }
)


class TokenVerificationError(ValueError):
    """A token is not one this tenant signed (bad form, unknown kid or bad signature)."""


class AllowListRegistry(JWSRegistry):
    """A JWS registry that accepts exactly the algorithms it was given.

    joserfc warns (``SecurityWarning``) on every use of ``EdDSA``, which RFC 9864
    deprecates in favour of ``Ed25519``. OpenID deployments and our config still
    name it ``EdDSA``, and our key checks pin the curve, so the warning would only
    be noise on every token; the explicit allow-list is the policy that matters.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


def generate_private_jwk(alg: str, kid: str) -> dict[str, Any]:
    """A new private JWK for ``alg`` (ES256: P-256, RS256/PS256: RSA 2048, EdDSA: Ed25519)."""
    params: dict[str, Any] = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        key: Key = jwk.generate_key("EC", "P-256", parameters=params)
    elif alg in {"RS256", "PS256"}:
        key = jwk.generate_key("RSA", _RSA_MIN_BITS, parameters=params)
    elif alg == "EdDSA":
        key = jwk.generate_key("OKP", "Ed25519", parameters=params)
    else:
        raise ValueError(f"unsupported signing alg {alg!r}")
    return dict(key.as_dict(private=True))


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A loaded tenant key: its config identity and the joserfc private key."""

    kid: str
    alg: str
    state: str
    key: Key

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK as published in the JWKS."""
        data = dict(self.key.as_dict(private=False))
        data.pop("key_ops", None)
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _header_segment(key: SigningKey, typ: str | None) -> bytes:
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid}
    if typ is not None:
        header["typ"] = typ
    return _b64(msgspec.json.encode(header))


def _signature_function(key: SigningKey) -> Callable[[bytes], bytes]:
    """The JWS signature (RFC 7518 section 3) of ``key``'s alg over a signing input.

    Made from the key's native private key, so a token costs the signature and
    not joserfc's per-call header and key checks (``_load_key`` checked the key).
    """
    private: Any = key.key.private_key
    if key.alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())

        def sign_es256(data: bytes) -> bytes:
            # JWS wants r || s, 32 bytes each, not the DER sequence OpenSSL returns.
            r, s = decode_dss_signature(private.sign(data, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_es256
    if key.alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda data: private.sign(data, pkcs1, sha256)
    if key.alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        sha256 = hashes.SHA256()
        return lambda data: private.sign(data, pss, sha256)
    if key.alg == "EdDSA":
        return private.sign  # type: ignore[no-any-return]
    raise ValueError(f"unsupported signing alg {key.alg!r}")


class TenantKeys:
    """A tenant's signing keys: signs with the current key, verifies with any.

    The current key's header segment and signature function are prepared here,
    once per load: a reload or rotation builds a new ``TenantKeys``.
    """

    __slots__ = ("_by_kid", "_current", "_header", "_jwks", "_jwks_json", "_registry", "_signature")

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        current = [k for k in keys if k.state == "current"]
        if len(current) != 1:
            raise ValueError("exactly one key must be in state current")
        self._current = current[0]
        self._header = _header_segment(self._current, None)
        self._signature = _signature_function(self._current)
        self._by_kid = {k.kid: k for k in keys}
        self._registry = AllowListRegistry(algorithms=sorted({k.alg for k in keys}))
        order = {"current": 0, "next": 1, "retired": 2}
        published = sorted(keys, key=lambda k: order.get(k.state, 3))
        self._jwks = {"keys": [k.public_jwk() for k in published]}
        self._jwks_json = msgspec.json.encode(self._jwks)

    @property
    def current(self) -> SigningKey:
        """The key that signs."""
        return self._current

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (a fresh copy the caller may change)."""
        return {"keys": [dict(k) for k in self._jwks["keys"]]}

    def jwks_json(self) -> bytes:
        """The public JWK Set as JSON bytes, encoded once."""
        return self._jwks_json

    def sign(self, claims: Mapping[str, Any], *, typ: str | None = None) -> str:
        """A compact JWS of ``claims`` by the current key (``kid`` in the header)."""
        header = self._header if typ is None else _header_segment(self._current, typ)
        signing_input = header + b"." + _b64(msgspec.json.encode(claims))
        return (signing_input + b"." + _b64(self._signature(signing_input))).decode("ascii")

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a JWS signed by any of this tenant's keys; claims are not checked."""
        try:
            # joserfc's json.loads recurses: cap the header's size and depth first.
            header = token.partition(".")[0]
            check_json(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
            obj = jws.extract_compact(token.encode("ascii"), registry=self._registry)
        except (JoseError, ValueError) as exc:
            raise TokenVerificationError("not a compact JWS") from exc
        header = obj.headers()
        kid = header.get("kid")
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenVerificationError("signed by an unknown key")
        if header.get("alg") != key.alg or "crit" in header:
            raise TokenVerificationError("unexpected header")
        try:
            valid = jws.validate_compact(obj, key.key, registry=self._registry)
        except JoseError as exc:
            raise TokenVerificationError("signature check failed") from exc
        if not valid:
            raise TokenVerificationError("bad signature")
        try:
            claims = decode_json(obj.payload)
        except msgspec.DecodeError as exc:
            raise TokenVerificationError("payload is not JSON") from exc
        if not isinstance(claims, dict):
            raise TokenVerificationError("payload is not a JSON object")
        return claims


class _KeyProblem(Exception):
    pass


def load_tenant_keys(tenant: TenantConfig, *, base_dir: Path | None = None) -> TenantKeys:
    """Read (or, with ``generate: true``, create) every key file of ``tenant``.

    Relative ``file`` paths resolve against ``base_dir`` (default: the working
    directory). Raises ConfigError listing every key that is missing or unfit.
    """
    loaded: list[SigningKey] = []
    problems: list[ConfigProblem] = []
    for index, cfg in enumerate(tenant.keys):
        path = Path(cfg.file)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            loaded.append(_load_key(cfg, path))
        except _KeyProblem as exc:
            problems.append(ConfigProblem(f"tenants.{tenant.id}.keys[{index}]", str(exc)))
    if problems:
        raise ConfigError(problems)
    return TenantKeys(loaded)


def key_file_problem(cfg: KeyConfig) -> str | None:
    """Why the key file of ``cfg`` would not load at start, or None (nothing is written).

    A missing file is fine with ``generate: true``: the gateway creates it on start.
    """
    path = Path(cfg.file)
    if cfg.generate and not path.exists():
        return None
    try:
        _load_key(cfg, path)
    except _KeyProblem as exc:
        return str(exc)
    return None


def _load_key(cfg: KeyConfig, path: Path) -> SigningKey:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not cfg.generate:
            raise _KeyProblem(
                f"key {cfg.kid!r}: file {path} does not exist; set generate: true or create it "
                f"with `ciba-gateway keys generate --alg {cfg.alg} --kid {cfg.kid} --out {path}`"
            ) from None
        text = _create_key_file(cfg, path)
    except OSError as exc:
        raise _KeyProblem(f"key {cfg.kid!r}: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise _KeyProblem(f"key {cfg.kid!r}: {path} is not a JSON Web Key") from None
    return SigningKey(kid=cfg.kid, alg=cfg.alg, state=cfg.state, key=_import_key(cfg, path, data))


def _import_key(cfg: KeyConfig, path: Path, data: Any) -> Key:
    where = f"key {cfg.kid!r} ({path})"
    if not isinstance(data, dict):
        raise _KeyProblem(f"{where}: not a JSON Web Key object")
    for name, expected in (("kid", cfg.kid), ("alg", cfg.alg), ("use", "sig")):
        if name in data and data[name] != expected:
            raise _KeyProblem(f"{where}: the JWK's {name} {data[name]!r} is not {expected!r}")
    kty, crv = _KEY_SHAPES[cfg.alg]
    if data.get("kty") != kty or (crv is not None and data.get("crv") != crv):
        shape = f"{kty} {crv}" if crv else kty
        raise _KeyProblem(f"{where}: alg {cfg.alg} needs an {shape} key")
    fields = {k: v for k, v in data.items() if k != "key_ops"}
    fields.update(kid=cfg.kid, alg=cfg.alg, use="sig")
    try:
        key = jwk.import_key(fields)
    except (JoseError, ValueError, TypeError, KeyError):
        raise _KeyProblem(f"{where}: not a valid {kty} JWK") from None
    if not key.is_private:
        raise _KeyProblem(f"{where}: the JWK has no private part")
    if kty == "RSA" and key.raw_value.key_size < _RSA_MIN_BITS:
        raise _KeyProblem(f"{where}: RSA keys need at least {_RSA_MIN_BITS} bits")
    return key


def _create_key_file(cfg: KeyConfig, path: Path) -> str:
    """Write a new key to ``path`` unless another process won the race; return the file's text."""
    text = json.dumps(generate_private_jwk(cfg.alg, cfg.kid), indent=2) + "\n"
    try:
        return _write_new_file(path, text)
    except OSError as exc:
        raise _KeyProblem(f"key {cfg.kid!r}: cannot create {path}: {exc.strerror}") from None


def write_private_jwk(path: Path, alg: str, kid: str) -> None:
    """Write a new private JWK to ``path`` (mode 0600; missing directories are made 0700).

    Raises:
        FileExistsError: ``path`` exists; a key file is never overwritten.
        OSError: the file cannot be written.
    """
    text = json.dumps(generate_private_jwk(alg, kid), indent=2) + "\n"
    if _write_new_file(path, text) != text:
        raise FileExistsError(errno.EEXIST, "the file exists", str(path))


def _write_new_file(path: Path, text: str) -> str:
    """Create ``path`` (0600) with ``text``; the existing file's text if it is already there."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # link() fails when the target exists, unlike rename(): a second worker
        # generating at the same moment keeps the first worker's key.
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text(encoding="utf-8")
        except OSError:
            if path.exists():
                return path.read_text(encoding="utf-8")
            os.replace(tmp, path)  # filesystems without hard links
    finally:
        tmp.unlink(missing_ok=True)
    return text
