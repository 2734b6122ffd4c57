"""OpenAI files and batches: objects that belong to the caller who created them.

    POST   /v1/files                  upload (multipart)       GET /v1/files       list
    GET    /v1/files/{id}             retrieve                 DELETE /v1/files/{id}
    GET    /v1/files/{id}/content     download
    POST   /v1/batches                create                   GET /v1/batches     list
    GET    /v1/batches/{id}           retrieve                 POST /v1/batches/{id}/cancel

Every file and batch irisgate relays the creation of is recorded with its creator (login,
and API key id when by key), the provider that holds it and its purpose (`openai_objects`,
store/objects.py); so are the output and error files of a batch, as soon as an answer names
them. A call that names an object goes to the provider that holds it, for its creator only:
anyone else gets the 404 OpenAI gives for an id that does not exist (never a 403, which
would say it does). The list calls are answered by irisgate from that table, so a caller
sees their own objects and no one else's, in OpenAI's list shape (newest first, `limit`,
`after`), each as irisgate last relayed it (a batch's status as of its last retrieve).

A new object is remembered in memory before the client gets the answer that names it
(`remember`, from the pipeline's seal), then written to the database (`save`): a client
that uses the id at once reaches it on this instance; other instances see it once written.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

import orjson
import structlog

from irisgate.access.grants import Access
from irisgate.access.routing import Route
from irisgate.gateway.formats.openai_batches import BATCH_DISCOUNT, BatchResults
from irisgate.gateway.formats.registry import OPENAI_BATCHES
from irisgate.snapshot import Snapshot
from irisgate.store import objects as store
from irisgate.store.database import Database
from irisgate.store.objects import OwnedObject
from irisgate.usage.pricing import Pricer
from irisgate.usage.tokens import Usage
from irisgate.wire.errors import GatewayError

Action = Literal[
    "file_create",
    "file_list",
    "file_get",
    "file_content",
    "file_delete",
    "batch_create",
    "batch_list",
    "batch_get",
    "batch_cancel",
]
_ID = r"([A-Za-z0-9_\-]{1,200})"
_FILE = re.compile(rf"/v1/files/{_ID}(/content)?")
_BATCH = re.compile(rf"/v1/batches/{_ID}(/cancel)?")
log = structlog.get_logger("irisgate.objects")
#: the largest object kept as relayed (listed later); a larger one is kept as its id
MAX_OBJECT = 64 * 1024
#: seconds a charge waits for the row of an object still being saved
SAVE_WAIT = 10.0
#: the most objects one list answer gives (OpenAI: batches 100, files 10 000)
MAX_LIMIT = 100
_DEFAULT_LIMIT = {"file": 100, "batch": 20}
#: the files a batch object names, and the purpose irisgate records them with
_BATCH_FILES = (("output_file_id", "batch_output"), ("error_file_id", "batch_error"))


@dataclass(frozen=True, slots=True)
class ObjectCall:
    """One call of the files and batches API: what it does and the id it names."""

    action: Action
    object_id: str = ""

    @property
    def kind(self) -> str:
        return "file" if self.action.startswith("file") else "batch"

    @property
    def creates(self) -> bool:
        return self.action in ("file_create", "batch_create")

    @property
    def listing(self) -> bool:
        return self.action in ("file_list", "batch_list")

    def missing(self, object_id: str | None = None, param: str | None = None) -> GatewayError:
        """OpenAI's 404 for an id that does not exist (also said to a caller who may not
        see it)."""
        name = "File" if self.kind == "file" else "Batch"
        shown = (object_id if object_id is not None else self.object_id)[:200]
        return GatewayError("not_found", f"No such {name} object: {shown}", param=param)


_CALLS: dict[tuple[str, str], ObjectCall] = {
    ("POST", "/v1/files"): ObjectCall("file_create"),
    ("GET", "/v1/files"): ObjectCall("file_list"),
    ("POST", "/v1/batches"): ObjectCall("batch_create"),
    ("GET", "/v1/batches"): ObjectCall("batch_list"),
}


def object_call_of(method: str, path: str) -> ObjectCall | None:
    """The call `method path` is, or None when it is none of the calls above."""
    fixed = _CALLS.get((method, path))
    if fixed is not None:
        return fixed
    match = _FILE.fullmatch(path)
    if match is not None:
        if match.group(2):
            return ObjectCall("file_content", match.group(1)) if method == "GET" else None
        action: dict[str, Action] = {"GET": "file_get", "DELETE": "file_delete"}
        found = action.get(method)
        return ObjectCall(found, match.group(1)) if found is not None else None
    match = _BATCH.fullmatch(path)
    if match is not None:
        if match.group(2):
            return ObjectCall("batch_cancel", match.group(1)) if method == "POST" else None
        return ObjectCall("batch_get", match.group(1)) if method == "GET" else None
    return None


def is_object_path(path: str) -> bool:
    """`path` is in the files or batches API's space (for a 405 naming its methods)."""
    return path in ("/v1/files", "/v1/batches") or path.startswith(("/v1/files/", "/v1/batches/"))


class ObjectIndex:
    """Object id → `OwnedObject`: objects being saved first, then the database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._saving: dict[str, OwnedObject] = {}
        self._saved: dict[str, asyncio.Event] = {}  # set once an object being saved is written

    def remember(self, objects: list[OwnedObject]) -> None:
        """Known at once, before `save` has written them (see the module doc)."""
        for obj in objects:
            self._saving[obj.object_id] = obj
            self._saved.setdefault(obj.object_id, asyncio.Event())

    async def save(self, objects: list[OwnedObject]) -> None:
        try:
            for obj in objects:
                await store.save(self._db, obj)
        finally:
            for obj in objects:  # a newer state remembered meanwhile stays until its save
                if self._saving.get(obj.object_id) is obj:
                    del self._saving[obj.object_id]
                    saved = self._saved.pop(obj.object_id, None)
                    if saved is not None:
                        saved.set()

    async def find(self, object_id: str) -> OwnedObject | None:
        found = self._saving.get(object_id)
        return found if found is not None else await store.find(self._db, object_id)

    async def forget(self, object_id: str) -> None:
        self._saving.pop(object_id, None)
        await store.remove(self._db, object_id)

    async def mark_charged(self, object_id: str) -> bool:
        """Mark a batch output file charged (see store/objects.py), once the row is written
        (the answer that named the file may still be saving it)."""
        saved = self._saved.get(object_id)
        if saved is not None:
            try:
                await asyncio.wait_for(saved.wait(), SAVE_WAIT)
            except TimeoutError:
                log.warning("object still not saved; charged if its row exists", id=object_id)
        return await store.mark_charged(self._db, object_id)

    async def page(self, login_name: str, kind: str, query: bytes) -> bytes:
        """The list answer of `login_name`'s `kind` objects (OpenAI's list shape)."""
        limit, after = _list_params(query, kind)
        found, more = await store.owned_by(self._db, login_name, kind, limit=limit, after=after)
        found = self._with_saving(found, login_name, kind, first_page=after is None)[:limit]
        data = [orjson.Fragment(obj.object) for obj in found]
        page: dict[str, Any] = {
            "object": "list",
            "data": data,
            "first_id": found[0].object_id if found else None,
            "last_id": found[-1].object_id if found else None,
            "has_more": more,
        }
        return orjson.dumps(page)

    def _with_saving(
        self, found: list[OwnedObject], login_name: str, kind: str, *, first_page: bool
    ) -> list[OwnedObject]:
        """`found` with the objects still being saved: their newer state, and on the first
        page the new ones first (a client lists right after the answer that made them)."""
        saving = {
            obj.object_id: obj
            for obj in self._saving.values()
            if obj.login_name == login_name and obj.kind == kind
        }
        if not saving:
            return found
        merged = []
        for obj in found:
            newer = saving.pop(obj.object_id, None)
            merged.append(newer if newer is not None and not newer.stub else obj)
        if first_page:
            merged[:0] = reversed(list(saving.values()))
        return merged


def _list_params(query: bytes, kind: str) -> tuple[int, str | None]:
    """`limit` (1..MAX_LIMIT) and `after` of a list call; a bad one is a 400 naming it."""
    try:
        params = parse_qs(query.decode("latin-1"), max_num_fields=20)
    except ValueError:
        raise GatewayError("invalid_request", "too many query parameters") from None
    limit = _DEFAULT_LIMIT[kind]
    raw = params.get("limit")
    if raw:
        if not raw[-1].isdigit() or not 1 <= int(raw[-1]) <= MAX_LIMIT:
            raise GatewayError(
                "invalid_request", f"limit must be an integer from 1 to {MAX_LIMIT}", param="limit"
            )
        limit = int(raw[-1])
    after = params.get("after")
    return limit, (after[-1][:200] if after else None)


def created_by_answer(
    call: ObjectCall,
    answer: dict[str, Any] | None,
    *,
    owner: OwnedObject,
) -> list[OwnedObject]:
    """What a successful answer to `call` makes irisgate record: the object it created or
    changed (with `owner`'s creator, provider, purpose and models), and a batch's output
    and error files once the batch names them."""
    if answer is None:
        return []
    object_id = answer.get("id")
    if not isinstance(object_id, str) or not object_id or len(object_id) > 200:
        return []
    if call.action in ("file_content", "file_delete"):
        return []
    now = datetime.now(UTC)
    body = orjson.dumps(answer)
    if len(body) > MAX_OBJECT:  # a provider's object is small; never store a huge one
        body = orjson.dumps({"id": object_id, "object": call.kind})
    made = [
        OwnedObject(
            object_id=object_id,
            kind=call.kind,
            provider=owner.provider,
            login_name=owner.login_name,
            key_id=owner.key_id,
            purpose=owner.purpose,
            models=owner.models,
            batch_id=owner.batch_id,
            object=body,
            request_id=owner.request_id,
            created_at=now,
        )
    ]
    if call.kind == "batch":
        for member, purpose in (
            ("output_file_id", "batch_output"),
            ("error_file_id", "batch_error"),
        ):
            file_id = answer.get(member)
            if isinstance(file_id, str) and file_id and len(file_id) <= 200:
                stub = {"id": file_id, "object": "file", "purpose": purpose}
                made.append(
                    OwnedObject(
                        object_id=file_id,
                        kind="file",
                        provider=owner.provider,
                        login_name=owner.login_name,
                        key_id=owner.key_id,
                        purpose=purpose,
                        models=owner.models,
                        batch_id=object_id,
                        object=orjson.dumps(stub),
                        request_id=owner.request_id,
                        created_at=now,
                        stub=True,
                    )
                )
    return made


# -- where a call goes ----------------------------------------------------------------------


def file_route(
    snapshot: Snapshot, access: Access, owner: OwnedObject, fields: dict[str, str]
) -> tuple[Route, OwnedObject]:
    """Where an upload goes: the first provider (by preference, then id) that enables
    `openai_batches` and serves a model granted to the caller; the owner with its purpose."""
    purpose = fields.get("purpose", "")
    if not purpose:
        raise GatewayError("invalid_request", "the upload has no 'purpose' field", param="purpose")
    providers = sorted(snapshot.config.providers.values(), key=lambda p: (-p.preference, p.id))
    for provider in providers:
        if not (provider.enabled and provider.accepts(OPENAI_BATCHES.flag)):
            continue
        if any(access.may_use_model(f"{provider.id}/{m}") for m in provider.models):
            owned = replace(owner, provider=provider.id, purpose=purpose[:100])
            return Route(provider, "", qualified=False), owned
    raise GatewayError(
        "permission",
        "access denied: no provider that enables 'openai_batches' serves a model granted to you",
    )


async def batch_route(
    index: ObjectIndex,
    snapshot: Snapshot,
    access: Access,
    owner: OwnedObject,
    body: dict[str, Any],
) -> tuple[Route, OwnedObject]:
    """A batch runs where its input file is, on the models its lines name: the file must be
    the caller's (else OpenAI's 404), and each of those models granted to them (else 403)."""
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise GatewayError(
            "invalid_request", "'input_file_id' must be a file id", param="input_file_id"
        )
    source = await index.find(file_id)
    if source is None or source.kind != "file" or source.login_name != owner.login_name:
        raise ObjectCall("file_get").missing(file_id, param="input_file_id")
    if source.purpose != "batch" or not source.models:
        raise GatewayError(
            "invalid_request",
            f"file {file_id[:200]} was not uploaded with purpose 'batch'",
            param="input_file_id",
        )
    routes = [
        snapshot.routes.resolve(
            f"{source.provider}/{model}", OPENAI_BATCHES.flag, OPENAI_BATCHES.title, access
        )
        for model in sorted(source.models)
    ]
    owned = replace(owner, provider=source.provider, purpose="batch", models=source.models)
    return Route(routes[0].provider, routes[0].model, qualified=False), owned


async def owned_route(
    index: ObjectIndex, snapshot: Snapshot, call: ObjectCall, login_name: str, access: Access
) -> tuple[Route, OwnedObject]:
    """The provider that holds the object a call names, for its creator only; anyone else
    (and an object whose provider is gone, or whose models are no longer granted) gets
    OpenAI's 404 for an unknown id."""
    owned = await index.find(call.object_id)
    if owned is None or owned.kind != call.kind or owned.login_name != login_name:
        raise call.missing()
    provider = snapshot.config.providers.get(owned.provider)
    if provider is None or not provider.enabled or not provider.accepts(OPENAI_BATCHES.flag):
        raise call.missing()
    model = sorted(owned.models)[0] if owned.models else ""
    if model and not access.may_use_model(f"{provider.id}/{model}"):
        raise call.missing()
    return Route(provider, model, qualified=False), owned


def charge(
    pricer: Pricer, route: Route, results: BatchResults, owned: OwnedObject
) -> tuple[Usage, int | None, str]:
    """A batch's results as a record's usage, cost and cost basis: priced per model (the
    batch's own model when it has one, else each result's) at the batch discount; unpriced
    when any model has no price."""
    total, cost, basis, priced = Usage(), 0, "", True
    for model, usage in results.usage.items():
        name = owned.models[0] if len(owned.models) == 1 else model
        amount, label = pricer.cost(route.provider, OPENAI_BATCHES.cost_basis, name, usage)
        for field_name, value in usage.as_dict().items():
            setattr(total, field_name, getattr(total, field_name) + value)
        if amount is None:
            priced = False
        else:
            cost += amount
            basis = basis or label
    if total.is_empty():
        return total, 0, ""
    if not priced:
        return total, None, ""
    return total, int(cost * BATCH_DISCOUNT), f"{basis} (batch)"
