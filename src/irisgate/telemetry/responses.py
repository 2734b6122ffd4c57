"""OpenAI Responses API calls that name a stored response instead of a model.

`GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`
and `POST /v1/responses/{id}/cancel` carry no model, so routing cannot pick a provider from
the request. Every response irisgate relays the creation of is remembered (its `resp_…` id →
provider, model, login; stored by the batch writer in the `responses` table), and such a call
goes to the provider that created the response, for the login that created it only.

`ResponseIndex` answers "who created this response" from the records this process stored
recently (so a client that asks right after the create does not race the batch writer) and
otherwise from the database (responses created through another instance, or before a
restart).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from irisgate.store import queries
from irisgate.store.database import Database
from irisgate.telemetry.record import RequestRecord

#: `/v1/responses/{id}` with an optional `/input_items` or `/cancel`; ids are opaque tokens
_PATH = re.compile(r"/v1/responses/([A-Za-z0-9_\-]{1,200})(/input_items|/cancel)?")
_METHODS = {"": frozenset({"GET", "DELETE"}), "/input_items": frozenset({"GET"})}
_CANCEL = frozenset({"POST"})
#: how many recently created responses each process keeps in memory
RECENT = 10_000


@dataclass(frozen=True, slots=True)
class Origin:
    """Who created a response, and through which provider and model."""

    provider: str
    model: str
    login_name: str


def response_id_of(method: str, path: str) -> str | None:
    """The response id when `method path` is one of the four calls above, else None."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    suffix = match.group(2) or ""
    allowed = _CANCEL if suffix == "/cancel" else _METHODS[suffix]
    return match.group(1) if method in allowed else None


class ResponseIndex:
    """Response id → `Origin`, from recent records first, then the `responses` table."""

    def __init__(self, db: Database, recent: int = RECENT) -> None:
        self._db = db
        self._recent: OrderedDict[str, Origin] = OrderedDict()
        self._limit = recent

    def remember(self, record: RequestRecord) -> None:
        """Note the response a finished request created (no-op when it created none)."""
        if not record.response_id:
            return
        origin = Origin(record.provider, record.model, record.login_name)
        self._recent.setdefault(record.response_id, origin)
        if len(self._recent) > self._limit:
            self._recent.popitem(last=False)

    async def origin(self, response_id: str) -> Origin | None:
        found = self._recent.get(response_id)
        if found is not None:
            return found
        row = await queries.response_origin(self._db, response_id)
        if row is None:
            return None
        return Origin(row["provider"], row["model"], row["login_name"])
