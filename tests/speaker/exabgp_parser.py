"""ExaBGP 5's own API route parser, as its reactor runs it for ``neighbor X announce|withdraw ...`` lines
(``Configuration.partial('static', ...)``): the routes ExaBGP makes of one line bgpctl writes. Shared by the
tests that check bgpctl's command lines against ExaBGP itself."""

from __future__ import annotations

from typing import Any

from exabgp.configuration.configuration import Configuration
from exabgp.environment import getenv
from exabgp.logger import log


def exabgp_routes(line: str) -> list[Any]:
    """ExaBGP's route changes (``Change``: ``.nlri``, ``.attributes``) for one API line; fails the test when
    ExaBGP refuses the line."""
    log.init(getenv())
    _neighbor, _address, command = line.split(" ", 2)
    action, rest = command.split(" ", 1)
    conf = Configuration([])
    conf.static.clear()
    assert conf.partial("static", rest, action), f"ExaBGP refused {line!r}"
    conf.scope.to_context()
    routes: list[Any] = conf.scope.pop_routes()
    return routes
