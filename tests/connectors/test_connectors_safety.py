"""The URL guard looks at the addresses a host resolves to, not at how the URL spells it."""

from __future__ import annotations

import pytest

from irisgate.connectors.safety import UnsafeURL, UrlGuard


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api",
        "http://localhost/",
        "http://api.localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://2130706433/",  # 127.0.0.1 as one decimal number: only resolving reveals it
        "http://0x7f.1/",  # and in hex shorthand
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
        "http://[fe80::1]/",
        "http://0.0.0.0/",
    ],
)
async def test_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL, match="loopback or link-local"):
        await UrlGuard(allow_local=False).check(url)


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3/", "https://100.101.102.103/mcp", "http://[fd7a:115c:a1e0::1]/"]
)
async def test_private_tailnet_and_ula_addresses_are_allowed(url: str) -> None:
    await UrlGuard(allow_local=False).check(url)


async def test_the_setting_allows_local_addresses_but_not_other_schemes() -> None:
    guard = UrlGuard(allow_local=True)
    await guard.check("http://127.0.0.1:9/")
    with pytest.raises(UnsafeURL, match="not an http"):
        await guard.check("file:///etc/passwd")
