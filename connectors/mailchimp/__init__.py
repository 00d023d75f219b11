"""Mailchimp connector (see connector.py), the wrapped SDK (sdk.py) and its declaration.

``DECLARATION`` is what the hub knows about the system; the connector itself is
imported on first use, so reading the declarations imports no vendor stack.
"""

from typing import TYPE_CHECKING

from connectors.declaration import ConnectorDeclaration, lazy_exports
from hub.systems import Capability as C
from hub.systems import Kind, SystemDeclaration

if TYPE_CHECKING:
    from connectors.mailchimp.connector import (
        MailchimpConnector,
        MailchimpSettings,
        subscriber_hash,
    )

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="mailchimp",
        title="Mailchimp (mailing lists)",
        titles={"fi": "Mailchimp (postituslistat)", "sv": "Mailchimp (e-postlistor)"},
        kind=Kind.SAAS,
        capabilities=frozenset({C.SYNC, C.FIND, C.EXPORT, C.ERASE, C.OPT_OUT, C.RECTIFY,
                                C.RESTRICT}),
        marketing=True,
    ),
    connector="connectors.mailchimp.connector:MailchimpConnector",
    settings="connectors.mailchimp.connector:MailchimpSettings",
    emulator="sandbox.mailchimp",
)

__getattr__ = lazy_exports(__name__, {
    "MailchimpConnector": "connectors.mailchimp.connector",
    "MailchimpSettings": "connectors.mailchimp.connector",
    "subscriber_hash": "connectors.mailchimp.connector",
})

__all__ = ["DECLARATION", "MailchimpConnector", "MailchimpSettings", "subscriber_hash"]
