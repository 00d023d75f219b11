"""The network drive: a shared folder of contracts, customer lists and notes.

Not one of ``VENDORS``: a deployment that keeps files on a share turns it on with
``HUB_EXTRA_SYSTEMS=connectors.network_drive``, ``NETWORK_DRIVE_ROOT`` and a
``[systems.network_drive]`` policy section (docs/vendors/network_drive.md). There is
no emulator: a test's or the demo's folder is the drive (``sandbox/network_drive.py``
writes one).
"""

from typing import TYPE_CHECKING

from connectors.declaration import ConnectorDeclaration, lazy_exports
from hub.systems import Capability as C
from hub.systems import Kind, SystemDeclaration

if TYPE_CHECKING:
    from connectors.network_drive.connector import (
        NetworkDriveConnector,
        NetworkDriveSettings,
    )

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="network_drive",
        title="Network drive (shared documents: contracts, customer lists, notes)",
        titles={"fi": "Verkkolevy (jaetut asiakirjat: sopimukset, asiakasluettelot, "
                      "muistiinpanot)",
                "sv": "Nätverksenhet (delade dokument: avtal, kundlistor, anteckningar)"},
        kind=Kind.FILES,
        capabilities=frozenset({C.SYNC, C.FIND, C.EXPORT, C.ERASE}),
        marketing=False,
    ),
    connector="connectors.network_drive.connector:NetworkDriveConnector",
    settings="connectors.network_drive.connector:NetworkDriveSettings",
    emulator=None,
)

__getattr__ = lazy_exports(__name__, {
    "NetworkDriveConnector": "connectors.network_drive.connector",
    "NetworkDriveSettings": "connectors.network_drive.connector",
})

__all__ = ["DECLARATION", "NetworkDriveConnector", "NetworkDriveSettings"]
