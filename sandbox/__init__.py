"""Local emulators of the vendor APIs the hub talks to (see sandbox/README.md).

Imports nothing from hub, connectors or pipelines: a connector and its emulator
must not share a misunderstanding.
"""

from sandbox.faults import Faults
from sandbox.people import Person, generate_people
from sandbox.server import Sandbox, credentials

__all__ = ["Faults", "Person", "Sandbox", "credentials", "generate_people"]
