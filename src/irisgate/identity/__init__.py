"""Who is calling: the identity of the Tailscale node and user behind a request.

Three modes (DESIGN.md): `tailscale` asks tailscaled's LocalAPI who the TCP peer is, `serve`
trusts the headers `tailscale serve` adds (loopback peers only), `dev` is one local user.
Every mode produces an `Identity` or raises `IdentityRefused` with a message for the caller;
there is no anonymous fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

APERTURE_CAP = "tailscale.com/cap/aperture"


@dataclass(frozen=True, slots=True)
class Identity:
    login_name: str  # user login, or the sorted comma-joined tags of a tagged node
    display_name: str = ""
    node_id: str = ""  # stable node id
    node_name: str = ""
    tags: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    tailnet: str = ""
    profile_pic: str = ""
    #: app capabilities granted to this node by the tailnet policy file, cap name -> values
    capmap: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    #: canonical JSON of `capmap`, so grant evaluation can be cached per distinct identity
    capmap_key: str = ""

    @property
    def is_tagged(self) -> bool:
        return bool(self.tags) and self.login_name == ",".join(sorted(self.tags))

    @property
    def aperture_caps(self) -> tuple[Any, ...]:
        return self.capmap.get(APERTURE_CAP, ())


def canonical_capmap(capmap: Mapping[str, tuple[Any, ...]]) -> str:
    if not capmap:
        return ""
    return orjson.dumps(capmap, option=orjson.OPT_SORT_KEYS).decode()


class IdentityRefused(Exception):
    """The caller cannot be identified; `str(exc)` is safe to show to the caller."""


class SignInRequired(IdentityRefused):
    """The caller brought no credential (no session cookie): answered 401, and a page
    request is sent to sign in (mode oidc)."""
