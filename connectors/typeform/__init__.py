"""Typeform: form responses hold people's answers (registration, feedback, requests).

``DECLARATION`` is what the hub knows about the system; the connector itself is
imported on first use, so reading the declarations imports no vendor stack.
"""

from typing import TYPE_CHECKING

from connectors.declaration import ConnectorDeclaration, lazy_exports
from hub.systems import Capability as C
from hub.systems import Kind, SystemDeclaration

if TYPE_CHECKING:
    from connectors.typeform.connector import TypeformConnector, TypeformSettings

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="typeform",
        title="Typeform (surveys and forms)",
        titles={"fi": "Typeform (kyselyt ja lomakkeet)", "sv": "Typeform (enkäter och formulär)"},
        kind=Kind.SAAS,
        capabilities=frozenset({C.SYNC, C.FIND, C.EXPORT, C.ERASE}),
        marketing=False,
    ),
    connector="connectors.typeform.connector:TypeformConnector",
    settings="connectors.typeform.connector:TypeformSettings",
    emulator="sandbox.typeform",
    starts_first=True,
)

__getattr__ = lazy_exports(__name__, {
    "TypeformConnector": "connectors.typeform.connector",
    "TypeformSettings": "connectors.typeform.connector",
})

__all__ = ["DECLARATION", "TypeformConnector", "TypeformSettings"]
