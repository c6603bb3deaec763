"""Freja eID connector and simulator for ciba-gateway (see README.md).

``connector.FrejaConnector`` drives the Freja eID RP REST API (authentication);
``simulator.create_simulator`` builds a Litestar app that speaks the same API.
"""
