"""Visma Netvisor: customers, their contact persons and invoice headers (XML API).

``DECLARATION`` is what the hub knows about the system; the connector itself is
imported on first use, so reading the declarations imports no vendor stack.
"""

from typing import TYPE_CHECKING

from connectors.declaration import ConnectorDeclaration, lazy_exports
from hub.systems import Capability as C
from hub.systems import Kind, SystemDeclaration

if TYPE_CHECKING:
    from connectors.netvisor.connector import NetvisorConnector, NetvisorSettings
    from connectors.netvisor.signing import NetvisorAuth, compute_mac

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="netvisor",
        title="Visma Netvisor (accounting)",
        titles={"fi": "Visma Netvisor (kirjanpito)", "sv": "Visma Netvisor (bokföring)"},
        kind=Kind.ACCOUNTING,
        capabilities=frozenset({C.SYNC, C.FIND, C.EXPORT, C.ERASE, C.RECTIFY, C.RESTRICT}),
        marketing=False,
    ),
    connector="connectors.netvisor.connector:NetvisorConnector",
    settings="connectors.netvisor.connector:NetvisorSettings",
    emulator="sandbox.netvisor",
)

__getattr__ = lazy_exports(__name__, {
    "NetvisorConnector": "connectors.netvisor.connector",
    "NetvisorSettings": "connectors.netvisor.connector",
    "NetvisorAuth": "connectors.netvisor.signing",
    "compute_mac": "connectors.netvisor.signing",
})

__all__ = ["DECLARATION", "NetvisorAuth", "NetvisorConnector", "NetvisorSettings", "compute_mac"]
