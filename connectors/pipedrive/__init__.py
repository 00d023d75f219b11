"""Pipedrive connector (see connector.py) and its declaration.

``DECLARATION`` is what the hub knows about the system; the connector itself is
imported on first use, so reading the declarations imports no vendor stack.
"""

from typing import TYPE_CHECKING

from connectors.declaration import ConnectorDeclaration, lazy_exports
from hub.systems import Capability as C
from hub.systems import Kind, SystemDeclaration

if TYPE_CHECKING:
    from connectors.pipedrive.connector import PipedriveConnector, PipedriveSettings

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="pipedrive",
        title="Pipedrive (customer relationship management)",
        titles={"fi": "Pipedrive (asiakkuudenhallinta)",
                "sv": "Pipedrive (kundrelationshantering)"},
        kind=Kind.SAAS,
        capabilities=frozenset({C.SYNC, C.FIND, C.EXPORT, C.ERASE, C.OPT_OUT, C.RECTIFY,
                                C.RESTRICT}),
        marketing=True,
    ),
    connector="connectors.pipedrive.connector:PipedriveConnector",
    settings="connectors.pipedrive.connector:PipedriveSettings",
    emulator="sandbox.pipedrive",
)

__getattr__ = lazy_exports(__name__, {
    "PipedriveConnector": "connectors.pipedrive.connector",
    "PipedriveSettings": "connectors.pipedrive.connector",
})

__all__ = ["DECLARATION", "PipedriveConnector", "PipedriveSettings"]
