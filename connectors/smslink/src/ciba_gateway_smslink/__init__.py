"""ciba-gateway connector: a one-time link by SMS, approved or declined on a phone page."""

from ciba_gateway_smslink.config import Config, RateLimit
from ciba_gateway_smslink.connector import SmsLinkConnector
from ciba_gateway_smslink.senders import Sender, SenderDeps, SendReceipt, SmsMessage

__all__ = [
    "Config",
    "RateLimit",
    "SendReceipt",
    "Sender",
    "SenderDeps",
    "SmsLinkConnector",
    "SmsMessage",
]
