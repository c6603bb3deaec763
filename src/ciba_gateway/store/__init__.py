"""Stores: the protocol in ``base`` and its implementations."""
