"""A connector's answer never runs as a page of the gateway: whatever the upstream sends, the
relayed answer carries `Content-Security-Policy: sandbox` and `nosniff`, and what a browser
would render as a document is a download. (tests/web/test_web_headers.py shows Chromium.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import ALICE_IP, config_text, http_from, start_gateway

from irisgate.testing import FakeHttpApi, FakeLocalAPI
from irisgate.testing.fake_http_api import PAGE
from irisgate.testing.server import IrisgateServer


@pytest.fixture(scope="module")
def api() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    api: FakeHttpApi, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    text = config_text({"site": {"protocol": "http", "url": api.base_url}}, [])
    gw = start_gateway(tmp_path_factory.mktemp("gw"), localapi, text)
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html; charset=utf-8",
        "TEXT/HTML",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/atom+xml",
    ],
)
def test_pages_from_upstream_are_sandboxed_downloads(
    gateway: IrisgateServer, content_type: str
) -> None:
    """The upstream asks for its page to render inline with scripts allowed: it is not."""
    with http_from(ALICE_IP, gateway) as client:
        response = client.get("/v1/connectors/site/page.html", params={"type": content_type})
    assert response.status_code == 200
    assert response.content == PAGE  # the body itself passes untouched
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert response.headers.get_list("content-disposition") == ["attachment"]


def test_other_answers_are_sandboxed_and_keep_their_disposition(
    gateway: IrisgateServer,
) -> None:
    with http_from(ALICE_IP, gateway) as client:
        json_answer = client.get("/v1/connectors/site/items")
        text = client.get("/v1/connectors/site/page.html", params={"type": "text/plain"})
    assert json_answer.headers["content-type"] == "application/json; charset=utf-8"
    assert json_answer.headers["content-security-policy"] == "sandbox"
    assert json_answer.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in json_answer.headers
    # not a page: the upstream's own (inline) disposition stays; its CSP and sniffing do not
    assert text.headers["content-disposition"] == "inline"
    assert text.headers.get_list("content-security-policy") == ["sandbox"]
    assert text.headers.get_list("x-content-type-options") == ["nosniff"]


def test_irisgates_own_connector_errors_are_not_sniffed(gateway: IrisgateServer) -> None:
    with http_from(ALICE_IP, gateway) as client:
        missing = client.get("/v1/connectors/nope/x")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.headers["x-content-type-options"] == "nosniff"
