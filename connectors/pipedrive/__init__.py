"""Pipedrive connector (see connector.py)."""

from connectors.pipedrive.connector import PipedriveConnector, PipedriveSettings

__all__ = ["PipedriveConnector", "PipedriveSettings"]
