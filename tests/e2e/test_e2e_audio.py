"""OpenAI's audio API through irisgate with the official SDK: transcriptions and translations
of a real WAV file the test makes (multipart uploads), speech relayed as it arrives, what the
records keep of them (sizes and types, never audio bytes), their kind and their price."""

from __future__ import annotations

import io
import json
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import ALICE_IP, BOB_IP, OPENAI_KEY, client_from, openai_client, wait_for_record

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

MODELS = ["gpt-4o-mini", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-tts"]


def audio_config(upstream: str) -> str:
    config: dict[str, Any] = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": OPENAI_KEY,
                "models": MODELS,
                "compatibility": {
                    "openai_chat": True,
                    "openai_audio": True,
                    "openai_batches": True,
                },
            },
            "chat-only": {
                "baseurl": upstream,
                "models": ["whisper-2"],
                "compatibility": {"openai_chat": True},
            },
        },
        "grants": [
            {
                "src": ["alice@example.com"],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
            },
            {
                "src": ["bob@example.com"],
                "app": {
                    "tailscale.com/cap/aperture": [{"role": "user"}, {"models": "openai/gpt-4o-*"}]
                },
            },
        ],
    }
    return json.dumps(config)


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    server = IrisgateServer(
        audio_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("audio"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )
    with server:
        yield server


def make_wav(seconds: float, rate: int = 8000) -> bytes:
    """A real mono 16-bit WAV file: a tone of `seconds`."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        frames = bytes((i * 37) % 256 for i in range(int(seconds * rate) * 2))
        audio.writeframes(frames)
    return out.getvalue()


def test_transcription_of_a_wav_file_reaches_the_provider_whole_and_is_recorded(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    wav = make_wav(2.0)
    client = openai_client(gw)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("hello.wav", wav, "audio/wav")
    )
    transcript = raw.parse()
    assert transcript.text == fake_llm.objects.transcript_text

    upload = fake_llm.objects.uploads[-1]
    assert upload.fields["model"] == "whisper-1"
    (sent,) = upload.files
    assert sent["bytes"] == len(wav)
    assert sent["filename"] == "hello.wav"

    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert (record["api_format"], record["kind"]) == ("openai_audio", "audio")
    assert record["model"] == "whisper-1"
    assert record["provider"] == "openai"
    stored = json.loads(record["request_body"])
    assert stored["model"] == "whisper-1"
    assert stored["file"] == [
        {"filename": "hello.wav", "content_type": "audio/wav", "bytes": len(wav)}
    ]
    assert record["request_bytes"] > len(wav)  # the whole body, fields included
    # whisper-1 reports the seconds of audio (2 s): priced per second, $0.006 a minute
    assert (record["unit"], record["units"]) == ("second", 2)
    assert record["cost_nanodollars"] == 2 * 100_000


def test_token_billed_transcription_records_its_usage(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    wav = make_wav(3.0)
    client = openai_client(gw)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="gpt-4o-transcribe", file=("a.wav", wav, "audio/wav"), response_format="json"
    )
    assert raw.parse().text == fake_llm.objects.transcript_text
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert record["input_tokens"] == 30  # 3 s at the fake's 10 audio tokens a second
    assert record["output_tokens"] == len(fake_llm.objects.transcript_text.split())


def test_verbose_json_and_text_answers_pass_through(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    """verbose_json says how long the audio was (priced per second, rounded up); text says
    nothing (unpriced, not free)."""
    client = openai_client(gw)
    verbose = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("a.wav", make_wav(1.5), "audio/wav"),
        response_format="verbose_json",
    )
    assert verbose.parse().duration == pytest.approx(1.5)
    record = wait_for_record(gw, verbose.headers["x-irisgate-request-id"])
    assert (record["unit"], record["units"], record["cost_nanodollars"]) == (
        "second",
        2,
        2 * 100_000,
    )
    text = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("a.wav", make_wav(0.5), "audio/wav"), response_format="text"
    )
    assert text.parse().strip() == fake_llm.objects.transcript_text
    record = wait_for_record(gw, text.headers["x-irisgate-request-id"])
    assert (record["unit"], record["units"], record["cost_nanodollars"]) == ("second", 0, None)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks it so
def test_translation(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = openai_client(gw)
    translation = client.audio.translations.create(
        model="whisper-1", file=("fr.wav", make_wav(1.0), "audio/wav")
    )
    assert translation.text == fake_llm.objects.transcript_text
    assert fake_llm.objects.uploads[-1].path == "/v1/audio/translations"


def test_speech_is_relayed_as_it_arrives_and_captured_by_size(
    gw: IrisgateServer, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    objects = fake_llm.objects
    gate = objects.speech_gate = threading.Event()
    client = openai_client(gw)
    target = tmp_path / "speech.mp3"
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello there, world."
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        pieces = response.iter_bytes(objects.speech_chunk_size)
        first = next(pieces)  # arrives while the fake still holds the rest back
        assert first == b"\x00" * objects.speech_chunk_size
        assert not gate.is_set()
        gate.set()
        with target.open("wb") as out:
            out.write(first)
            for piece in pieces:
                out.write(piece)
        request_id = response.headers["x-irisgate-request-id"]
    expected = b"".join(
        bytes([i]) * objects.speech_chunk_size for i in range(objects.speech_chunks)
    )
    assert target.read_bytes() == expected

    record = wait_for_record(gw, request_id)
    assert (record["model"], record["kind"]) == ("gpt-4o-mini-tts", "audio")
    # counted in characters of its input; irisgate has no per-character price
    assert (record["unit"], record["units"]) == ("character", len("Hello there, world."))
    assert record["cost_nanodollars"] is None
    assert json.loads(record["response_body"]) == {
        "irisgate_binary_body": {"content_type": "audio/mpeg", "bytes": len(expected)}
    }
    assert json.loads(record["request_body"])["input"] == "Hello there, world."


def test_audio_needs_the_flag_and_a_grant(gw: IrisgateServer) -> None:
    wav = make_wav(0.2)
    with pytest.raises(openai.NotFoundError) as not_enabled:
        openai_client(gw).audio.transcriptions.create(
            model="whisper-2", file=("a.wav", wav, "audio/wav")
        )
    assert "openai_audio" in str(not_enabled.value)
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(gw, BOB_IP).audio.transcriptions.create(
            model="whisper-1", file=("a.wav", wav, "audio/wav")
        )


def test_an_upload_without_a_model_is_refused(gw: IrisgateServer) -> None:
    http = client_from(ALICE_IP, gw)
    answer = http.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", make_wav(0.1), "audio/wav")},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "model"
    not_multipart = http.post("/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert not_multipart.status_code == 400
    assert "multipart/form-data" in not_multipart.json()["error"]["message"]


def test_an_upload_over_the_body_limit_is_refused_as_it_arrives(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """`--max-request-body` holds for uploads: declared too large, or counted as it comes."""
    from irisgate.testing.inprocess import InProcessIrisgate

    assert localapi.socket_path
    with InProcessIrisgate(
        audio_config(fake_llm.base_url),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_MAX_REQUEST_BODY": "64KiB"},
    ) as gw:
        http = gw.client_from(ALICE_IP)
        big = make_wav(8.0)  # 128 kB of samples
        declared = http.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("a.wav", big, "audio/wav")},
        )
        assert declared.status_code == 413
        assert "--max-request-body" in declared.json()["error"]["message"]

        boundary = "b0undary"

        def chunked() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
                f'whisper-1\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
            ).encode()
            yield big
            yield f"\r\n--{boundary}--\r\n".encode()

        counted = http.post(
            "/v1/audio/transcriptions",
            content=chunked(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert counted.status_code == 413
        assert counted.json()["error"]["type"] == "invalid_request_error"
    assert not any(u.path == "/v1/audio/transcriptions" for u in fake_llm.objects.uploads)
