"""Freja eID connector for ciba-gateway (see README.md).

``connector.FrejaConnector`` drives the Freja eID RP REST API (authentication and
signature); its simulator is a separate distribution, ``ciba-gateway-freja-sim``.
"""
