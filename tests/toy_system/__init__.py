"""A toy sixth system: one declaration and its own folder, nothing else edited.

``tests/test_declarations.py`` adds it with ``HUB_EXTRA_SYSTEMS=tests.toy_system``, the
hook a deployment uses for a system of its own, and checks that it appears in the
Dagster assets and job, the policy check and the access letter.
"""

from connectors.declaration import ConnectorDeclaration
from hub.systems import Capability, Kind, SystemDeclaration

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="toy",
        title="Toy box (paper cards in a drawer)",
        kind=Kind.MANUAL,
        capabilities=frozenset({Capability.SYNC, Capability.FIND, Capability.EXPORT,
                                Capability.ERASE}),
    ),
    connector="tests.toy_system.connector:ToyConnector",
    settings="tests.toy_system.connector:ToySettings",
)
