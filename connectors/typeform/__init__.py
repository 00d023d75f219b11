"""Typeform: form responses hold people's answers (registration, feedback, requests)."""

from connectors.typeform.connector import TypeformConnector, TypeformSettings

__all__ = ["TypeformConnector", "TypeformSettings"]
