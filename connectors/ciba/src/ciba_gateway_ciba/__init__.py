"""Upstream CIBA connector for ciba-gateway (see README.md).

``connector.CibaConnector`` is a CIBA client of another CIBA provider (a
national scheme's OP, a broker, a bank's own OP, or another ciba-gateway), in
poll or ping mode, verifying the upstream's ID token before anything is issued.
"""
