"""irisgate: a self-hosted AI gateway.

Every LLM request of an organisation passes through it: it identifies the caller from the
network (Tailscale), checks grants, routes by model to a provider with the provider's key,
relays the answer untouched and records tokens, cost and the whole exchange.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("irisgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
