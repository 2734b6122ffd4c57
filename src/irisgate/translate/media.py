"""Images as the APIs write them: `data:` URLs (OpenAI) and base64 or URL sources (Anthropic).

irisgate never fetches an image URL: a URL goes to a provider that accepts URLs, and a
provider that accepts only inline data cannot take it (the adapter refuses with a 400).
"""

from __future__ import annotations

import binascii
import re

from irisgate.translate.ir import Image, Untranslatable

#: the image types every supported API accepts
MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def image_from_url(url: str, field: str) -> Image:
    """An image from an OpenAI `image_url.url`: a base64 `data:` URL or an https URL."""
    match = _DATA_URL.fullmatch(url)
    if match is not None:
        return inline_image(match["type"], match["data"], field)
    if url.startswith("https://"):
        return Image(media_type="", url=url)
    raise Untranslatable(f"'{field}' must be an https URL or a base64 data: URL")


def inline_image(media_type: str, data: str, field: str) -> Image:
    """A base64 image, checked for a supported type and valid base64 (never decoded whole)."""
    media_type = media_type.lower()
    if media_type not in MEDIA_TYPES:
        raise Untranslatable(
            f"'{field}': image type '{media_type[:40]}' is not one of "
            f"{', '.join(sorted(MEDIA_TYPES))}"
        )
    head = data[:64]
    try:
        binascii.a2b_base64(head[: len(head) - len(head) % 4])
    except binascii.Error:
        raise Untranslatable(f"'{field}': the image data is not base64") from None
    return Image(media_type=media_type, data=data)


def data_url(image: Image) -> str:
    """An image as OpenAI's `image_url.url` takes it."""
    return image.url or f"data:{image.media_type};base64,{image.data}"
