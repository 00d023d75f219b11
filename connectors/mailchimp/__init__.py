"""Mailchimp connector (see connector.py) and the wrapped SDK (sdk.py)."""

from connectors.mailchimp.connector import MailchimpConnector, MailchimpSettings, subscriber_hash

__all__ = ["MailchimpConnector", "MailchimpSettings", "subscriber_hash"]
