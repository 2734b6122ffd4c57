"""Upstream credentials that are more than a static header: Google service accounts (OAuth
access tokens minted with the JWT bearer grant) and AWS keys (SigV4 request signing).

`keys` parses them from a provider's `apikey` (once per config version), `service_account`
mints and caches tokens, `sigv4` signs, `provider` picks what a provider needs.
"""
