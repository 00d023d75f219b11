"""Build a connector by system name, its settings read from the environment.

One line per system: a lazy import, so building Pipedrive never imports the
Netvisor XML stack and a broken optional connector cannot break the others.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

import httpx

from connectors.base import Connector

# system -> "module:factory"; the factory is called as factory(client=client).
CONNECTORS: dict[str, str] = {
    "pipedrive": "connectors.pipedrive:PipedriveConnector.from_env",
    "mailchimp": "connectors.mailchimp:MailchimpConnector.from_env",
    "typeform": "connectors.typeform:TypeformConnector.from_env",
    "netvisor": "connectors.netvisor:NetvisorConnector.from_env",
}


def available() -> list[str]:
    return sorted(CONNECTORS)


def _resolve(target: str) -> Callable[..., Connector]:
    module_name, _, attr_path = target.partition(":")
    obj: object = import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj  # type: ignore[return-value]


def build_connector(system: str, *, client: httpx.Client | None = None) -> Connector:
    """The connector for ``system`` configured from the environment (and ``.env``).

    ``client`` replaces the HTTP client the connector would build (tests inject one
    with a mock transport). Mailchimp talks through its SDK and ignores it.
    Raises KeyError for an unknown system and ConfigError for missing settings.
    """
    try:
        target = CONNECTORS[system]
    except KeyError:
        raise KeyError(f"no connector for system {system!r}; known: {', '.join(available())}"
                       ) from None
    return _resolve(target)(client=client)
