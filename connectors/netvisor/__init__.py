"""Visma Netvisor: customers, their contact persons and invoice headers (XML API)."""

from connectors.netvisor.connector import NetvisorConnector, NetvisorSettings
from connectors.netvisor.signing import NetvisorAuth, compute_mac

__all__ = ["NetvisorAuth", "NetvisorConnector", "NetvisorSettings", "compute_mac"]
