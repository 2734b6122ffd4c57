"""Who is calling: the identity of the Tailscale node and user behind a request.

Modes (DESIGN.md): `tailscale` asks tailscaled's LocalAPI who the TCP peer is, `serve`
trusts the headers `tailscale serve` adds (loopback peers only), `dev` is one local user,
`keys` knows nobody by the network. In every mode a request that carries an irisgate API key
is its key's owner instead (`irisgate.identity.keyring`), with `Identity.key` set.
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
class KeyInfo:
    """The API key a caller used: what narrows it and names it (never its secret)."""

    id: str
    name: str
    #: provider/model globs the key is limited to, within its owner's grants; () for none
    models: tuple[str, ...] = ()
    #: a template of the config's quotas that the key's own bucket (`key:<id>`) follows
    quota: str = ""
    #: the key cannot create keys: it is narrower than its owner (models, quota or expiry)
    narrowed: bool = False


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
    #: the API key the request authenticated with, None when known by other means
    key: KeyInfo | None = None

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

    #: HTTP status of the refusal: 403 unless the caller must authenticate (`KeyRefused`)
    status = 403


class KeyRefused(IdentityRefused):
    """The request carries an irisgate API key that is not valid (unknown, revoked, expired),
    or the identity mode needs one and there is none: 401, never the network identity."""

    status = 401


class SignInRequired(IdentityRefused):
    """The caller brought no credential (no session cookie): answered 401, and a page
    request is sent to sign in (mode oidc)."""

    status = 401
