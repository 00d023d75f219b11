"""The connector side of a system's declaration: how to build it and what it reads.

Each vendor package declares itself in its ``__init__.py`` as ``DECLARATION``, next to
its connector; ``connectors/registry.py`` collects them. Classes are named as
``"module:Class"`` and imported only when used, so reading the declarations never
imports a vendor's stack (Netvisor's XML, Mailchimp's SDK) and a broken connector
cannot break the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import httpx

from connectors.base import Connector
from hub.systems import SystemDeclaration


def resolve(target: str) -> Any:  # noqa: ANN401 - whatever "module:attr.attr" names
    """The object named by ``"module:attr.attr"``, imported now."""
    module_name, _, attr_path = target.partition(":")
    obj: object = import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


@dataclass(frozen=True)
class ConnectorDeclaration:
    """One system: the hub's facts (``system``) and how to connect to it.

    ``connector`` names the class (``"module:Class"``) whose
    ``from_env(*, client=None)`` builds a configured connector; ``settings`` its
    ``pydantic_settings`` class (the ``<NAME>_*`` variables it reads); ``emulator`` the
    sandbox module that emulates the vendor (``sandbox/server.py`` lists it too, as the
    sandbox imports nothing of ours), None for a system without one. ``starts_first``
    says the vendor paces every call of an account (Typeform: 2 per second), so its task
    is a request's longest: a request's job starts it before the others, which would
    otherwise take the CPU while it waits to start (bench/fanout.py: 0.2-0.9 s of a
    request's wall time).
    """

    system: SystemDeclaration
    connector: str
    settings: str
    emulator: str | None = None
    starts_first: bool = False

    @property
    def name(self) -> str:
        return self.system.name

    def connector_class(self) -> type[Connector]:
        return resolve(self.connector)

    def settings_class(self) -> type:
        return resolve(self.settings)

    def build(self, *, client: httpx.Client | None = None) -> Connector:
        """The connector configured from the environment; ``client`` replaces its HTTP client."""
        factory: Callable[..., Connector] = self.connector_class().from_env  # type: ignore[attr-defined]
        return factory(client=client)


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``names`` (name -> module) on first use.

    A vendor package exports its connector without importing it when only its
    ``DECLARATION`` is read.
    """

    def __getattr__(name: str) -> Any:  # noqa: ANN401, N807 - the module hook (PEP 562)
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(names[name]), name)

    return __getattr__
