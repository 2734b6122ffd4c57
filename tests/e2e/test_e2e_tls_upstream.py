"""An HTTPS upstream, as every hosted LLM API is: irisgate verifies its certificate against
the system store (here extended by `SSL_CERT_FILE`, as an operator with a private CA would)
and relays plain and streamed answers over it; an untrusted certificate is a 502."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from conftest import OPENAI_KEY, _socket_of, gateway_config, openai_client

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer
from irisgate.testing.tls import Certificate, self_signed


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_llm(certificate: Certificate) -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.start(ssl_context=certificate.server_context())
    assert fake.base_url.startswith("https://")
    yield fake
    fake.stop()


def _gateway(
    fake: FakeLLM, localapi: FakeLocalAPI, data: Path, env: dict[str, str]
) -> IrisgateServer:
    return IrisgateServer(
        gateway_config(fake.base_url),
        data_dir=data,
        identity="tailscale",
        tailscaled_socket=_socket_of(localapi),
        env=env,
    )


def test_https_upstream_relays_plain_and_streamed_answers(
    tls_llm: FakeLLM, localapi: FakeLocalAPI, certificate: Certificate, tmp_path: Path
) -> None:
    env = {"SSL_CERT_FILE": str(certificate.cert_path)}
    with _gateway(tls_llm, localapi, tmp_path, env) as gw:
        client = openai_client(gw)
        messages = [{"role": "user", "content": "hello over tls"}]
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert plain.choices[0].message.content
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == plain.choices[0].message.content
    seen = [r for r in tls_llm.requests if r.path == "/v1/chat/completions"]
    assert len(seen) == 2
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in seen)


def test_untrusted_upstream_certificate_is_a_502(
    tls_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    with _gateway(tls_llm, localapi, tmp_path, {}) as gw:
        client = openai_client(gw)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
