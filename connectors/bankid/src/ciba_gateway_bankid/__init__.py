"""Swedish BankID (RP API v6.0) connector for ciba-gateway.

The connector is ``ciba_gateway_bankid.connector.BankIDConnector`` (entry point
``bankid`` in ``ciba_gateway.connectors``); its simulator is a separate
distribution, ``ciba-gateway-bankid-sim``.
"""

__all__: list[str] = []
