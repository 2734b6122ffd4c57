"""Which buckets one request charges (reference §5.2-5.4).

Every capability that applies to the request's model (unscoped, or its `models` glob
matches) contributes its `quotas` references. Each reference is a *chain*: the bucket itself,
then its `overdraft` buckets in order. Chains are charged in parallel (each the full cost);
within a chain the cost goes to the first bucket while it has money, the rest to the next.
Templates are expanded with the caller's login name (`<user>`) and node id (`<node>`;
`user:LOGIN` for callers without a node, see `expand`). A caller with an API key charges its
owner's buckets, and when the key carries a budget also the key's own bucket `key:<id>`,
which follows the quota template the key names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from irisgate.access.grants import Access
from irisgate.config.model import Config, Quota
from irisgate.identity import Identity

#: what `<node>` becomes, before the login name, for a caller without a node id
NO_NODE_PREFIX = "user:"


@dataclass(frozen=True, slots=True)
class Link:
    """One bucket of a chain: its expanded name and its quota (None when invalid)."""

    name: str
    template: str
    quota: Quota | None
    problem: str = ""  # why the quota is unusable, when it is


Chain = tuple[Link, ...]


def expand(template: str, identity: Identity) -> str:
    """The bucket name `template` means for `identity`.

    `<node>` needs a node id, which only the `tailscale` identity mode knows. Without one
    (`serve`, `dev`, `oidc`, an API key) it becomes `user:` and the login name, so such a
    bucket is kept per person rather than shared by every caller without a node.
    """
    node = identity.node_id or NO_NODE_PREFIX + identity.login_name
    return template.replace("<user>", identity.login_name).replace("<node>", node)


def charges_for(config: Config, access: Access, identity: Identity, fqn: str) -> tuple[Chain, ...]:
    """The chains a request for `fqn` by `identity` charges; () when no quota applies.

    Kept with the caller's `Access` (one per config version and identity): the same caller,
    node and model always charge the same chains under one config.
    """
    key = ("quota-chains", fqn, identity.login_name, identity.node_id, identity.key)
    chains: tuple[Chain, ...] = access.memo(key, lambda: _charges(config, access, identity, fqn))
    return chains


def _charges(config: Config, access: Access, identity: Identity, fqn: str) -> tuple[Chain, ...]:
    chains: list[Chain] = []
    for capability in access.scoped(fqn):
        for ref in capability.quotas:
            chain = tuple(_link(config, t, identity) for t in (ref.bucket, *ref.overdraft))
            if chain not in chains:
                chains.append(chain)
    if identity.key is not None and identity.key.quota:
        chains.append((_key_link(config, identity.key.quota, identity.key.id),))
    return tuple(chains)


def _key_link(config: Config, template: str, key_id: str) -> Link:
    """The bucket of an API key's own budget: `key:<id>`, limited like `template`."""
    link = _link(config, template, Identity(login_name=key_id))
    return Link(f"key:{key_id}", template, link.quota, link.problem)


def template_of(config: Config, name: str) -> str | None:
    """The template of `config.quotas` a concrete bucket name was expanded from, if any."""
    if name in config.quotas:
        return name
    for template in config.quotas:
        if _template_pattern(template).fullmatch(name):
            return template
    return None


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(<user>|<node>)", template)
    return re.compile("".join(".+" if p in ("<user>", "<node>") else re.escape(p) for p in parts))


def _link(config: Config, template: str, identity: Identity) -> Link:
    name = expand(template, identity)
    quota = config.quotas.get(template)
    if quota is not None:
        return Link(name, template, quota)
    problem = config.broken_quotas.get(template)
    if problem is None:
        problem = f'bucket "{template}" is not defined in quotas'
    return Link(name, template, None, problem)
