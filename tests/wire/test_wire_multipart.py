"""FormReader (wire/multipart.py) and Upload (wire/upload.py): a body as httpx2 (the OpenAI
SDK's transport) writes it, fed at every split; malformed bodies refused with a reason."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from irisgate.wire import multipart, upload
from irisgate.wire.bodylimit import BodyTooLarge
from irisgate.wire.multipart import FormError, FormReader, boundary_of

IMAGE = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n" + b"\x00" * 100


def sdk_body(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[str, bytes]:
    """A multipart body exactly as httpx2 encodes one (content type, bytes)."""
    request = httpx2.Request("POST", "http://x/", data=fields, files=files)
    return request.headers["content-type"], request.read()


def read(content_type: str, body: bytes, pieces: list[bytes] | None = None) -> multipart.Form:
    reader = FormReader(boundary_of(content_type))
    for piece in pieces if pieces is not None else [body]:
        reader.feed(piece)
    return reader.close()


def test_fields_kept_files_measured_at_every_split() -> None:
    content_type, body = sdk_body(
        {"model": "gpt-image-1", "prompt": "a red fox"}, {"image": ("fox.png", IMAGE, "image/png")}
    )
    for at in range(len(body) + 1):
        form = read(content_type, body, [body[:at], body[at:]])
        assert form.fields == {"model": "gpt-image-1", "prompt": "a red fox"}
        assert form.summary() == {
            "model": "gpt-image-1",
            "prompt": "a red fox",
            "image": [{"filename": "fox.png", "content_type": "image/png", "bytes": len(IMAGE)}],
        }
        start, end = form.spans["model"]
        assert body[start:end] == b"gpt-image-1"


def test_a_files_bytes_are_handed_on_as_they_pass_at_every_split() -> None:
    """`on_file_data` gets exactly the file's bytes (never a field's, never a boundary),
    however the body is cut; the reader keeps none of them."""
    content_type, body = sdk_body({"purpose": "batch"}, {"file": ("in.jsonl", IMAGE, "x/y")})
    for at in range(0, len(body) + 1, 7):
        seen: list[bytes] = []
        reader = FormReader(boundary_of(content_type), on_file_data=seen.append)
        reader.feed(body[:at])
        reader.feed(body[at:])
        form = reader.close()
        assert b"".join(seen) == IMAGE
        assert form.fields == {"purpose": "batch"}


def test_byte_at_a_time() -> None:
    content_type, body = sdk_body({"model": "m"}, {"image": ("a.png", IMAGE, "image/png")})
    form = read(content_type, body, [body[i : i + 1] for i in range(len(body))])
    assert form.fields == {"model": "m"}
    assert form.parts[-1].size == len(IMAGE)


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("application/json", "must be multipart/form-data"),
        ("multipart/form-data", "boundary"),
        ("multipart/form-data; boundary=" + "b" * 71, "boundary"),
    ],
)
def test_bad_content_types(content_type: str, reason: str) -> None:
    with pytest.raises(FormError, match=reason):
        boundary_of(content_type)


def test_cut_body_is_refused() -> None:
    content_type, body = sdk_body({"model": "m"}, {"image": ("a.png", IMAGE, "image/png")})
    with pytest.raises(FormError, match="before its closing boundary"):
        read(content_type, body[:-20])


def test_part_without_disposition_is_refused() -> None:
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
    with pytest.raises(FormError, match="Content-Disposition"):
        read("multipart/form-data; boundary=b", body)


def test_field_over_its_limit_is_refused() -> None:
    big = {"prompt": "x" * (multipart.FIELD_LIMIT + 1)}
    content_type, body = sdk_body(big, {"image": ("a.png", b"png", "image/png")})
    with pytest.raises(FormError, match="field 'prompt' is larger"):
        read(content_type, body)


def test_too_many_parts_are_refused() -> None:
    parts = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
        for i in range(multipart.MAX_PARTS + 1)
    )
    with pytest.raises(FormError, match="more than"):
        read("multipart/form-data; boundary=b", parts + b"--b--\r\n")


def test_too_many_headers_are_refused() -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(20))
    body = b'--b\r\nContent-Disposition: form-data; name="f"\r\n' + headers + b"\r\nv\r\n--b--\r\n"
    with pytest.raises(FormError, match="malformed"):
        read("multipart/form-data; boundary=b", body)


def _receive(chunks: list[bytes]) -> Any:
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


@pytest.mark.parametrize("size", [1000, upload.SPILL_AT * 3])
def test_upload_kept_and_model_replaced(size: int) -> None:
    image = bytes(range(256)) * (size // 256)
    content_type, body = sdk_body(
        {"model": "openai/gpt-image-1"}, {"image": ("a.png", image, "image/png")}
    )
    reader = FormReader(boundary_of(content_type))
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    kept = asyncio.run(upload.read_upload(_receive(chunks), [], len(body), "--x", reader))
    try:
        form = reader.close()
        assert b"".join(kept.pieces()) == body
        assert all(len(p) <= upload.PIECE for p in kept.pieces())
        assert not kept.replace(form.spans["model"], b"something-else", b"gpt-image-1")
        assert kept.replace(form.spans["model"], b"openai/gpt-image-1", b"gpt-image-1")
        sent = b"".join(kept.pieces())
        assert sent == body.replace(b"openai/gpt-image-1", b"gpt-image-1", 1)
        assert kept.sent_size == len(sent)
        again = FormReader(boundary_of(content_type))
        again.feed(sent)
        assert again.close().fields["model"] == "gpt-image-1"
    finally:
        kept.close()


def test_upload_over_the_limit_is_refused_as_it_arrives() -> None:
    content_type, body = sdk_body({"model": "m"}, {"image": ("a.png", IMAGE, "image/png")})
    reader = FormReader(boundary_of(content_type))
    chunks = [body[:100], body[100:]]
    with pytest.raises(BodyTooLarge):
        asyncio.run(upload.read_upload(_receive(chunks), [], 150, "--max-request-body", reader))
