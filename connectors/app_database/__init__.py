"""The company's own application database: its user accounts (controller A's app).

Not one of ``VENDORS``: a deployment that has such a database turns it on with
``HUB_EXTRA_SYSTEMS=connectors.app_database``, a ``[systems.app_database]`` policy
section, ``APP_DATABASE_URL`` and a mapping file (docs/vendors/app_database.md).

``DECLARATION`` is what the hub knows about the system; the connector (SQLAlchemy)
is imported on first use. The declaration is fixed, while what the database holds is
the mapping's: an opt-out acts only in tables whose mapping names a marketing-consent
column (elsewhere it is ``nothing_to_do``), so ``marketing`` stays False.
"""

from typing import TYPE_CHECKING

from connectors.declaration import ConnectorDeclaration, lazy_exports
from hub.systems import Capability as C
from hub.systems import Kind, SystemDeclaration

if TYPE_CHECKING:
    from connectors.app_database.connector import AppDatabaseConnector, AppDatabaseSettings

DECLARATION = ConnectorDeclaration(
    system=SystemDeclaration(
        name="app_database",
        title="Our own application (user accounts and orders)",
        titles={"fi": "Oma sovelluksemme (käyttäjätilit ja tilaukset)",
                "sv": "Vår egen applikation (användarkonton och beställningar)"},
        kind=Kind.DATABASE,
        capabilities=frozenset({C.SYNC, C.FIND, C.EXPORT, C.ERASE, C.OPT_OUT, C.RESTRICT}),
        marketing=False,
    ),
    connector="connectors.app_database.connector:AppDatabaseConnector",
    settings="connectors.app_database.connector:AppDatabaseSettings",
    emulator=None,  # the database itself is real in tests: SQLite and PostgreSQL
)

__getattr__ = lazy_exports(__name__, {
    "AppDatabaseConnector": "connectors.app_database.connector",
    "AppDatabaseSettings": "connectors.app_database.connector",
})

__all__ = ["DECLARATION", "AppDatabaseConnector", "AppDatabaseSettings"]
