"""A simulator of the Freja eID RP API for ciba-gateway's demo and tests (see README.md).

Not production code: its own distribution (``ciba-gateway-freja-sim``), registered
under ``ciba_gateway.simulators`` as ``freja``. ``app.create_simulator`` builds the
Litestar app; ``simulator.FrejaSimulator`` is its state and rules.
"""
