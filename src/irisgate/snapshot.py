"""One config version made ready for the request path: grants, routes and prices.

Built once per version and swapped atomically; requests hold the snapshot they started with,
so a config change never affects a request in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from irisgate.access.grants import GrantIndex
from irisgate.access.routing import RouteTable
from irisgate.config.model import Config
from irisgate.config.schema import parse_capability
from irisgate.usage.pricing import Pricer


@dataclass(frozen=True)
class Snapshot:
    version: int
    hash: str
    text: str
    config: Config
    created_at: datetime | None = None
    grants: GrantIndex = field(init=False)
    routes: RouteTable = field(init=False)
    pricer: Pricer = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", GrantIndex(self.config, parse_capability))
        object.__setattr__(self, "routes", RouteTable(self.config))
        object.__setattr__(self, "pricer", Pricer(self.config))
