"""OpenAI Responses calls that name a stored response (no model): retrieve, delete, input items
and cancel reach the provider that created the response, for its creator only.

The gateway here has two providers serving `gpt-4o-mini` on two separate fake vendors; the
backup one is preferred, so routing by model would pick it. Responses are created through
`openai/gpt-4o-mini`: only the first fake holds them, and a call routed by model would get the
backup fake's 404.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import CI_IP, OPENAI_KEY, gateway_config, openai_client, wait_for_record

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate


@pytest.fixture(scope="module")
def backup_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def _config(primary: str, backup: str) -> str:
    config = json.loads(gateway_config(primary).split("\n", 1)[1])
    config["providers"]["openai-backup"] = {
        "baseurl": backup,
        "apikey": OPENAI_KEY,
        "models": ["gpt-4o-mini"],
        "preference": 10,
        "compatibility": {"openai_chat": True, "openai_responses": True},
    }
    return json.dumps(config)


def _server(
    fake: FakeLLM, backup: FakeLLM, localapi: FakeLocalAPI, data: Path
) -> InProcessIrisgate:
    """irisgate's app in the test's process (`InProcessIrisgate`)."""
    assert localapi.socket_path
    return InProcessIrisgate(
        _config(fake.base_url, backup.base_url),
        data_dir=data,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("stored"))


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, backup_llm: FakeLLM, localapi: FakeLocalAPI, data_dir: Path
) -> Iterator[InProcessIrisgate]:
    with _server(fake_llm, backup_llm, localapi, data_dir) as server:
        yield server


def create(client: openai.OpenAI, **extra: Any) -> Any:
    return client.responses.create(model="openai/gpt-4o-mini", input="hello there world", **extra)


def test_retrieve_input_items_and_delete_reach_the_creating_provider(
    gw: InProcessIrisgate, fake_llm: FakeLLM, backup_llm: FakeLLM
) -> None:
    client = openai_client(gw)
    created = create(client)
    assert created.id in fake_llm.stored_responses

    raw = client.responses.with_raw_response.retrieve(created.id)
    got = raw.parse()
    assert (got.id, got.status, got.output_text) == (created.id, "completed", created.output_text)
    items = client.responses.input_items.list(created.id)
    texts = [part.text for item in items.data for part in item.content]  # type: ignore[union-attr]
    assert texts == ["hello there world"]
    client.responses.delete(created.id)
    assert created.id not in fake_llm.stored_responses
    with pytest.raises(openai.NotFoundError) as gone:  # the vendor's own 404, passed through
        client.responses.retrieve(created.id)
    assert gone.value.body["message"] == f"Response with id '{created.id}' not found."  # type: ignore[index]

    calls = [(r.method, r.path) for r in fake_llm.requests]
    assert calls == [
        ("POST", "/v1/responses"),
        ("GET", f"/v1/responses/{created.id}"),
        ("GET", f"/v1/responses/{created.id}/input_items"),
        ("DELETE", f"/v1/responses/{created.id}"),
        ("GET", f"/v1/responses/{created.id}"),
    ]
    assert backup_llm.requests == []
    assert fake_llm.requests[1].headers["Authorization"] == f"Bearer {OPENAI_KEY}"

    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert (record["method"], record["path"]) == ("GET", f"/v1/responses/{created.id}")
    assert (record["provider"], record["model"], record["status"]) == (
        "openai",
        "gpt-4o-mini",
        200,
    )
    assert record["cost_nanodollars"] == 0
    assert record["input_tokens"] == record["output_tokens"] == 0  # retrieving costs nothing
    assert json.loads(record["response_body"])["id"] == created.id


def test_cancel_reaches_the_creating_provider(gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    client = openai_client(gw)
    queued = create(client, background=True)
    assert queued.status == "queued"
    assert client.responses.cancel(queued.id).status == "cancelled"

    foreground = create(client)
    with pytest.raises(openai.BadRequestError) as refused:  # the vendor's 400, unchanged
        client.responses.cancel(foreground.id)
    assert "background=true" in refused.value.message


def test_streamed_creates_are_remembered_too(gw: InProcessIrisgate) -> None:
    client = openai_client(gw)
    with client.responses.stream(model="openai/gpt-4o-mini", input="hello there world") as s:
        created = s.get_final_response()
    assert client.responses.retrieve(created.id).output_text == created.output_text


def test_another_caller_or_an_unknown_id_gets_openais_404(
    gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    created = create(openai_client(gw))
    calls = len(fake_llm.requests)
    other = openai_client(gw, ip=CI_IP)  # granted openai/*, but not the creator
    for response_id in (created.id, "resp_unknown0000"):
        with pytest.raises(openai.NotFoundError) as caught:
            other.responses.retrieve(response_id)
        assert caught.value.body == {  # the OpenAI error envelope, minus the outer "error"
            "message": f"Response with id '{response_id}' not found.",
            "type": "invalid_request_error",
            "param": "response_id",
            "code": None,
        }
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(response_id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(response_id)
    assert len(fake_llm.requests) == calls  # none of it reached a vendor


def test_the_origin_survives_a_restart(
    fake_llm: FakeLLM, backup_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """A new start finds the creator in the database (the `responses` table)."""
    with _server(fake_llm, backup_llm, localapi, tmp_path) as first:
        created = create(openai_client(first))
    with _server(fake_llm, backup_llm, localapi, tmp_path) as second:
        assert openai_client(second).responses.retrieve(created.id).id == created.id
    assert backup_llm.requests == []
