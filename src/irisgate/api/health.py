"""Provider health as the dashboard's Providers page and `GET /api/providers/health` show it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from irisgate.runtime import Runtime


def health_rows(runtime: Runtime) -> list[dict[str, Any]]:
    """One row per configured provider, in config order: its health in this process."""
    snapshot = runtime.snapshot
    providers = snapshot.config.providers
    views = runtime.health.views(
        ((p.id, p.key_count) for p in providers.values()), snapshot.version
    )
    rows = []
    for view in views:
        provider = providers[view.provider]
        at = view.last_error_at
        rows.append(
            {
                "provider": view.provider,
                "name": provider.name or provider.id,
                "routing": "disabled"
                if provider.disabled
                else "unavailable"
                if provider.unavailable_reason
                else "in rotation",
                "preference": provider.preference,
                "weight": provider.weight,
                "state": view.state,
                "error_rate": round(view.error_rate, 4),
                "attempts": view.attempts,
                "last_error": view.last_error,
                "last_error_at": datetime.fromtimestamp(at, UTC).isoformat() if at else None,
                "cool_down_s": round(view.cool_down_s, 1),
                "keys": [
                    {
                        "index": key.index,
                        "state": "dropped"
                        if key.dropped
                        else "resting"
                        if key.resting_s > 0
                        else "available"
                        if provider.usable_key(key.index)
                        else "not set",
                        "rest_s": round(key.resting_s, 1),
                    }
                    for key in view.keys
                ],
            }
        )
    return rows
