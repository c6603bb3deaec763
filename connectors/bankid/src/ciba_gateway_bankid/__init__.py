"""Swedish BankID (RP API v6.0) connector for ciba-gateway, with a simulator of the upstream.

The connector is ``ciba_gateway_bankid.connector.BankIDConnector`` (entry point
``bankid`` in ``ciba_gateway.connectors``); the simulator factory is
``ciba_gateway_bankid.simulator.create_simulator`` (``ciba_gateway.simulators``).
"""

__all__: list[str] = []
