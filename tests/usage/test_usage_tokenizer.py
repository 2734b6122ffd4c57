"""Token counts from OpenAI's encodings, loaded offline from installed package data."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
import subprocess
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest
import tiktoken
from tiktoken_ext import openai_public

import irisgate
from irisgate.usage.estimate import Prompt, UsageEstimate
from irisgate.usage.tokenizer import (
    ENCODINGS,
    TokenizerUnavailable,
    count_tokens,
    count_tokens_async,
    encoding_for_model,
    load_encoding,
)
from irisgate.usage.tokens import Usage


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5.5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),  # OpenRouter's vendor/model form
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama-3.1-70b", "o200k_base"),  # unknown: the default
        ("claude-sonnet-4-5", "o200k_base"),
    ],
)
def test_encoding_by_model(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_encodings_give_openais_published_tokens() -> None:
    """The cookbook's example ("tiktoken is great!" is 6 tokens: 83, 1609, 5963, 374, 2294, 0
    in cl100k_base) and counts that differ between the two encodings."""
    cl100k = load_encoding(ENCODINGS["cl100k_base"])
    assert cl100k.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert count_tokens("o200k_base", ["hello there world"]) == 3
    assert count_tokens("cl100k_base", ["hello there world"]) == 3
    assert count_tokens("o200k_base", ["hello world", "hello world"]) == 4
    assert count_tokens("o200k_base", []) == 0
    assert count_tokens("o200k_base", ["<|endoftext|>"]) > 1  # special tokens read as text


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_the_encodings_are_tiktokens_own(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken's own construction of the encoding (its download answered from a local cache
    holding the same verified file) splits and ranks text exactly like irisgate's."""
    data = ENCODINGS[name]
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    raw = gzip.decompress(resources.files(data.package).joinpath(data.resource).read_bytes())
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(raw)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    theirs = getattr(openai_public, name)()
    ours = load_encoding(data, name)
    assert ours.pattern == theirs["pat_str"]
    assert ours.special_tokens == theirs["special_tokens"]
    reference = tiktoken.Encoding(
        name,
        pat_str=theirs["pat_str"],
        mergeable_ranks=theirs["mergeable_ranks"],
        special_tokens=theirs["special_tokens"],
    )
    text = "Hello, wörld! It's 2026-11-25: 12345 tokens\n\n\tdon't  STOP  ñandú 日本語 🙂 </a>"
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    # irisgate's own code and docs, and random strings of letters, digits, spaces, line ends,
    # punctuation, accents, combining marks, CJK, Hangul, Cyrillic, Arabic and emoji: BPE
    # merges every way, token for token as tiktoken does.
    rnd = random.Random(20261126)
    alphabet = "abcXYZ 123\n\t\r.,;'\"-_/😀é漢字한국어Привет العربية  \u200b\u0301<|>"
    texts = [path.read_text() for path in sorted(Path(irisgate.__file__).parent.rglob("*.py"))]
    texts = texts[:40] + ["".join(rnd.choice(alphabet) for _ in range(300)) for _ in range(300)]
    for sample in texts:
        assert ours.encode_ordinary(sample) == reference.encode_ordinary(sample)
    assert ours.count(texts) == sum(len(reference.encode_ordinary(t)) for t in texts)


def test_a_file_that_does_not_match_its_pinned_hash_is_refused() -> None:
    good = ENCODINGS["o200k_base"]
    wrong = replace(good, resource="data/cl100k_base.tiktoken.gz")
    with pytest.raises(TokenizerUnavailable, match=r"cl100k_base\.tiktoken\.gz has SHA-256"):
        load_encoding(wrong)


def test_a_missing_package_or_file_is_named() -> None:
    good = ENCODINGS["o200k_base"]
    with pytest.raises(TokenizerUnavailable, match="no_such_package"):
        load_encoding(replace(good, package="no_such_package"))
    with pytest.raises(TokenizerUnavailable, match=r"nothing\.tiktoken"):
        load_encoding(replace(good, resource="nothing.tiktoken"))


async def test_estimate_fills_in_only_what_was_not_reported() -> None:
    answer = ["tok0", " tok1", " tok2"]  # two tokens each
    both = await UsageEstimate(
        model="gpt-4o-mini",
        reported=Usage(),
        prompt=lambda: Prompt(["hello there world"], 1),
        answer=lambda: answer,
    ).run()
    assert both == Usage(input_tokens=3 + 3 + 3, output_tokens=6)

    reported = Usage(input_tokens=1500, output_tokens=1, cache_read_tokens=1000)
    output_only = await UsageEstimate(
        model="claude-sonnet-4-5", reported=reported, prompt=None, answer=lambda: answer
    ).run()
    assert output_only == Usage(input_tokens=1500, output_tokens=6, cache_read_tokens=1000)
    assert reported.output_tokens == 1  # the reported usage is not changed in place


def test_an_idle_encoding_is_given_back_and_its_memory_with_it() -> None:
    # In a fresh interpreter, so the figures are this encoding's alone.
    script = """
import sys
from irisgate.usage import tokenizer

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

before = rss()
first = tokenizer.count_tokens("o200k_base", ["hello world, " * 50])
held = rss()
assert tokenizer.loaded() == ["o200k_base"]
assert tokenizer.release_idle(3600) == []  # used just now: kept
assert tokenizer.release_idle(0) == ["o200k_base"]
assert tokenizer.loaded() == []
released = rss()
again = tokenizer.count_tokens("o200k_base", ["hello world, " * 50])
print(first, again, round(held - before), round(held - released))
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    first, again, grew, gave_back = (int(x) for x in run.stdout.split())
    assert first == again == 151  # loaded again on demand, counting the same
    assert 2 <= grew <= 12  # MiB: the encoding's tables (~6 here; tiktoken's took ~45)
    assert gave_back >= 0.6 * grew  # most of it returned to the system


async def test_counting_a_long_text_gives_way_to_other_tasks() -> None:
    """A cut stream's prompt can be hundreds of kilobytes: counting it on the event loop must
    let requests through as it goes, and count what the synchronous path counts."""
    rnd = random.Random(7)
    words = [
        "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8)) for _ in range(2000)
    ]
    text = " ".join(rnd.choice(words) for _ in range(40_000))  # ~360 KB, ~80k tokens
    ticks = 0
    counting = True

    async def ticker() -> None:
        nonlocal ticks
        while counting:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    counted = await count_tokens_async("o200k_base", [text])
    counting = False
    await task
    fresh = load_encoding(ENCODINGS["o200k_base"])  # no caches: counted from scratch
    assert counted == len(fresh.encode_ordinary(text)) > 40_000
    assert ticks >= 5
