"""ciba-gateway: an OpenID Connect CIBA provider in front of national eID schemes."""

__version__ = "0.1.0"
