"""`GET /v1/models`: the models this caller may use, in OpenAI's list shape, with prices."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from irisgate.api.catalog import cost_basis_of, formats_of
from irisgate.gateway.formats.registry import OPENAI_CHAT
from irisgate.handlers import ApiError, identify, json_response, runtime_of
from irisgate.wire.errors import GatewayError


def _error(error: GatewayError) -> Response:
    body, _ = OPENAI_CHAT.error_body(error)
    return Response(body, status_code=error.status, media_type="application/json")


async def list_models(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        caller = await identify(request)
    except ApiError as exc:  # answer in OpenAI's envelope, which this path's clients expect
        return _error(GatewayError("permission", exc.message))
    if caller.access.role is None:
        return _error(GatewayError("permission", "access denied: no role granted"))
    snapshot = runtime.snapshot
    data = []
    seen: set[str] = set()
    for model, providers in snapshot.routes.models().items():
        for provider in providers:
            if not provider.enabled or not caller.access.may_use_model(f"{provider.id}/{model}"):
                continue
            if model in seen:
                break
            seen.add(model)
            formats = formats_of(provider)
            entry: dict[str, object] = {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": provider.id,
                "formats": [f.flag for f in formats],
            }
            pricing = snapshot.pricer.per_token(provider, cost_basis_of(formats), model)
            if pricing is not None:
                entry["pricing"] = pricing
            data.append(entry)
            break
    return json_response({"object": "list", "data": data})
