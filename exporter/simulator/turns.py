"""One simulated model turn: plausible token counts from the request, and the reply text."""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

_WORDS = ("pong", "this", "is", "a", "simulated", "reply", "with", "plausible", "token", "counts")
_THOUGHTS = ("let", "me", "think", "about", "this", "step", "by", "step", "first")
CACHE_MIN_TOKENS = 1024  # prompts shorter than this are never cached (as OpenAI and others do)
CACHE_BLOCK = 128
REASONING_MIN_BUDGET = 32  # below this budget the simulated model skips reasoning


def mapping(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def bad_budget(value: object) -> bool:
    """True unless `value` is absent (None) or a positive integer."""
    if value is None:
        return False
    return isinstance(value, bool) or not isinstance(value, int) or value < 1


def count_tokens(text: str) -> int:
    """About four characters per token, at least one for any non-empty text."""
    return math.ceil(len(text) / 4)


def prompt_tokens(texts: list[str], overhead: int = 3) -> int:
    """Tokens for a list of messages: their text plus a small per-message overhead."""
    return sum(count_tokens(t) + overhead for t in texts) + overhead


class PromptCache:
    """Bounded memory of prompts seen per provider, so repeats report cached input tokens."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def clear(self) -> None:
        self._seen.clear()

    def lookup(self, provider: str, texts: list[str]) -> bool:
        """True when this provider saw this exact prompt before; remembers it either way."""
        digest = hashlib.sha256("\x00".join([provider, *texts]).encode()).hexdigest()
        hit = digest in self._seen
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return hit


@dataclass
class Turn:
    """Counts and text for one answer. `prompt_tokens` includes cached and cache-write tokens."""

    model: str
    prompt_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    pieces: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def output_tokens(self) -> int:
        """Visible answer tokens (reasoning not included)."""
        return len(self.pieces)

    @property
    def reasoning_tokens(self) -> int:
        return len(self.thoughts)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def uncached_tokens(self) -> int:
        """Input tokens neither read from nor written to a cache."""
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens


def cacheable(tokens: int) -> int:
    """The cached prefix of a prompt this long: whole blocks, 0 below the minimum."""
    return 0 if tokens < CACHE_MIN_TOKENS else (tokens - 1) // CACHE_BLOCK * CACHE_BLOCK


def plan_turn(
    rng: random.Random,
    model: str,
    prompt: int,
    *,
    budget: int | None,
    reasoning: bool,
    cached: int = 0,
    cache_write: int = 0,
) -> Turn:
    """Decide the reply: reasoning and answer tokens together never exceed `budget`."""
    turn = Turn(model=model, prompt_tokens=prompt, cached_tokens=cached)
    turn.cache_write_tokens = cache_write
    left = budget if budget is not None else 1_000_000
    if reasoning and left >= REASONING_MIN_BUDGET:
        n = rng.randint(6, 16)
        turn.thoughts = [(" " if i else "") + _THOUGHTS[i % len(_THOUGHTS)] for i in range(n)]
        left -= n
    wanted = rng.randint(6, 14)
    n = max(0, min(wanted, left))
    turn.truncated = n < wanted
    turn.pieces = [(" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(n)]
    if n and not turn.truncated:
        turn.pieces[-1] += "."
    return turn
