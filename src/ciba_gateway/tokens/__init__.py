"""Tokens the gateway issues, one room per concern.

``keys``
    Tenant signing keys and the JWKS (load, generate, sign, verify).
``claims``
    The ``sub`` policy and the claims each granted scope releases.
``id_token``
    Minting ID tokens and the ``at_hash``/``rt_hash`` rule.
``access_token``
    Opaque access tokens and the record the store keeps for one.
``sealing``
    AES-256-GCM sealing of stored data under a key only the token holder has.

Import from the module that owns a name; this package re-exports nothing.
"""
