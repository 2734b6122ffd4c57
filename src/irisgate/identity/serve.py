"""Identity from the headers `tailscale serve` adds in front of irisgate.

Only a loopback peer can be `tailscale serve` itself; headers from anyone else are refused,
since a tailnet or LAN peer could forge them. Funnel (public internet) requests carry no
identity and are refused too.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.errors import HeaderParseError
from email.header import decode_header, make_header

import orjson

from irisgate.identity import Identity, IdentityRefused, canonical_capmap
from irisgate.wire import nesting


def decode_rfc2047(value: str, header: str = "Tailscale-User-Login") -> str:
    """Decode `=?utf-8?q?...?=` words (serve encodes non-ASCII logins and names)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):
        raise IdentityRefused(f"{header} header is not valid RFC 2047") from None


def identity_from_serve_headers(headers: Mapping[str, str]) -> Identity:
    """`headers` has lower-case names. Raises IdentityRefused when there is no identity."""
    if headers.get("tailscale-funnel-request"):
        raise IdentityRefused("requests through Tailscale Funnel carry no identity; refused")
    login = headers.get("tailscale-user-login")
    if not login:
        raise IdentityRefused(
            "no Tailscale-User-Login header: tagged nodes and non-tailnet clients "
            "cannot be identified behind tailscale serve"
        )
    capmap: dict[str, tuple[object, ...]] = {}
    raw_caps = headers.get("tailscale-app-capabilities")
    if raw_caps:
        try:
            parsed = nesting.loads(raw_caps)
        except nesting.TooDeep as exc:
            raise IdentityRefused(f"Tailscale-App-Capabilities header is {exc}") from None
        except orjson.JSONDecodeError:
            raise IdentityRefused("Tailscale-App-Capabilities header is not JSON") from None
        if isinstance(parsed, dict):
            capmap = {str(k): tuple(v) for k, v in parsed.items() if isinstance(v, list)}
    return Identity(
        login_name=decode_rfc2047(login),
        display_name=decode_rfc2047(headers.get("tailscale-user-name", ""), "Tailscale-User-Name"),
        profile_pic=headers.get("tailscale-user-profile-pic", ""),
        capmap=capmap,
        capmap_key=canonical_capmap(capmap),
    )
