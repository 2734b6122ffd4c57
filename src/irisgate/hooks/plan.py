"""Which hooks fire for a request, in which order, with what (reference §9.1, §2.4).

`send_hooks` entries of every capability that applies to the request's model are merged by
hook name: events and send values are unioned, so a hook fires once per request. Hooks
missing from the config or disabled are left out. The pre-request chain runs by preference
(higher first), then name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from irisgate.access.grants import Access
from irisgate.config.model import Config, Hook
from irisgate.identity import Identity
from irisgate.telemetry.record import RequestRecord

PRE_REQUEST = "pre_request"
ENTIRE_REQUEST = "entire_request"
TOOL_CALL_ENTIRE_REQUEST = "tool_call_entire_request"


@dataclass(frozen=True, slots=True)
class Wired:
    hook: Hook
    events: frozenset[str]
    send: frozenset[str]


@dataclass(frozen=True, slots=True)
class HookPlan:
    pre: tuple[Wired, ...]  # chain order
    post: tuple[Wired, ...]


class Conversation(Protocol):
    """How the request's API format reads a conversation (the format plug-in itself:
    `irisgate.gateway.formats.base.ApiFormat`)."""

    def user_message(self, body: dict[str, Any]) -> str: ...

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class HookCall:
    """What hooks may be told about one request."""

    identity: Identity
    access: Access
    record: RequestRecord
    url: str
    quotas: Mapping[str, Any]
    estimate_nanodollars: int | None
    conversation: Conversation


def plan_for(config: Config, access: Access, fqn: str) -> HookPlan | None:
    """The hooks of one caller for one model; None when there are none."""
    events: dict[str, set[str]] = {}
    send: dict[str, set[str]] = {}
    for capability in access.scoped(fqn):
        for ref in capability.send_hooks:
            events.setdefault(ref.name, set()).update(ref.events)
            send.setdefault(ref.name, set()).update(ref.send)
    wired = [
        Wired(hook, frozenset(events[name]), frozenset(send[name]))
        for name in events
        if (hook := config.hooks.get(name)) is not None and not hook.disabled
    ]
    if not wired:
        return None
    wired.sort(key=lambda w: (-w.hook.preference, w.hook.name))
    pre = tuple(w for w in wired if PRE_REQUEST in w.events)
    post = tuple(w for w in wired if {ENTIRE_REQUEST, TOOL_CALL_ENTIRE_REQUEST} & w.events)
    return HookPlan(pre, post) if pre or post else None
