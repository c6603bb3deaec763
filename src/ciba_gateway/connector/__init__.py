"""The public connector plugin API (the only module a connector may import).

See connectors/README.md for a guide; ``api`` holds the types and
``registry`` the entry-point discovery.
"""

from ciba_gateway.connector.api import *  # noqa: F403
from ciba_gateway.connector.api import __all__ as _api_all
from ciba_gateway.connector.masking import (
    mask_email,
    mask_hint,
    mask_national_id,
    mask_phone,
    mask_text,
)
from ciba_gateway.connector.national_id import (
    NationalIdError,
    is_national_id,
    luhn_ok,
    parse_norwegian,
    parse_swedish,
)
from ciba_gateway.connector.outbound import (
    BEST_EFFORT_DEADLINE,
    ErrorBoundary,
    HttpSettings,
    best_effort,
    build_client,
    build_transport,
    call_with_retries,
    is_transient,
    never_sent,
    unavailable_status,
)
from ciba_gateway.connector.registry import (
    CONNECTOR_GROUP,
    SIMULATOR_GROUP,
    ConnectorRegistry,
    PluginError,
    load_registry,
)
from ciba_gateway.connector.safejson import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_UPSTREAM_JSON_BYTES,
    JsonLimitError,
    check_json,
    decode_json,
)
from ciba_gateway.connector.transport import Answer, exchange

__all__ = [
    *_api_all,
    "BEST_EFFORT_DEADLINE",
    "CONNECTOR_GROUP",
    "Answer",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_UPSTREAM_JSON_BYTES",
    "SIMULATOR_GROUP",
    "ConnectorRegistry",
    "ErrorBoundary",
    "HttpSettings",
    "JsonLimitError",
    "NationalIdError",
    "PluginError",
    "best_effort",
    "build_client",
    "build_transport",
    "call_with_retries",
    "check_json",
    "decode_json",
    "exchange",
    "is_national_id",
    "is_transient",
    "mask_email",
    "mask_hint",
    "mask_national_id",
    "mask_phone",
    "mask_text",
    "never_sent",
    "parse_norwegian",
    "parse_swedish",
    "load_registry",
    "luhn_ok",
    "unavailable_status",
]
