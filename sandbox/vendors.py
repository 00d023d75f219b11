"""The sandbox's one list of vendor emulators.

The sandbox imports nothing of the hub's (architecture.md, layering), so it cannot read
the connectors' declarations; this tuple is its own list, and
``tests/test_declarations.py`` checks it names the same emulators the declarations do.
Each name is a package ``sandbox/<name>/`` exposing ``build_app``; its port on a fixed
``port_base`` is ``port_base + PORT_OFFSET[name]`` (the order below, from 1), so append
a new emulator at the end to keep the others' ports.
"""

EMULATORS: tuple[str, ...] = ("pipedrive", "mailchimp", "typeform", "netvisor")

PORT_OFFSET: dict[str, int] = {name: n for n, name in enumerate(EMULATORS, start=1)}
