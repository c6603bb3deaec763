"""A simulator of the BankID RP API v6.0 for ciba-gateway's demo and tests (see README.md).

Not production code: its own distribution (``ciba-gateway-bankid-sim``), registered
under ``ciba_gateway.simulators`` as ``bankid``. ``app.create_simulator`` builds the
Litestar app; ``simulator.BankIDSimulator`` is its state and rules.
"""
