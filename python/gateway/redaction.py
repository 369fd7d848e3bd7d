"""Masking every fragment of a held secret in a text (pure; ``secrets_held`` holds the secrets).

A provider may echo the key it was sent whole, upper-cased, shortened
(``sk-proj-abcd********wxyz``) or cut at some length, so matching the whole key is not enough:
any run of at least ``MIN_RUN`` consecutive characters of a secret, compared ASCII
case-insensitively, is a fragment. Every ``MIN_RUN``-character window of the text is looked up
in the set of the secrets' windows (linear in the text length); overlapping matches form one
run, replaced whole by ``MASK``. The cut to the length limit comes after the replacement, so
no fragment is ever cut out of reach of the matcher. Secrets shorter than ``MIN_RUN`` are
matched by their whole length instead (see docs/behaviour.md, "Secrets in messages").
"""

from __future__ import annotations

import string
from collections.abc import Iterable

MIN_RUN = 8
MASK = "[redacted]"
# Length-preserving ASCII fold: str.lower() may change the length of non-ASCII text.
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    """``text`` with ASCII letters lower-cased, every other character kept (same length)."""
    return text.translate(_FOLD)


def windows(secrets: Iterable[str | None]) -> frozenset[str]:
    """The folded ``MIN_RUN``-character windows of every secret (a shorter secret: itself)."""
    found: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        folded = fold(secret)
        if len(folded) <= MIN_RUN:
            found.add(folded)
            continue
        found.update(folded[i : i + MIN_RUN] for i in range(len(folded) - MIN_RUN + 1))
    return frozenset(found)


def _widths(grams: frozenset[str]) -> tuple[int, ...]:
    return tuple(sorted({len(g) for g in grams}, reverse=True))


def redact(text: str, grams: frozenset[str], limit: int | None = None) -> str:
    """``text`` with every run covered by a window in ``grams`` replaced by ``MASK``, then
    cut to ``limit`` characters."""
    if grams and text:
        text = _mask(text, grams)
    return text if limit is None else text[:limit]


def _mask(text: str, grams: frozenset[str]) -> str:
    folded = fold(text)
    widths = _widths(grams)
    runs: list[tuple[int, int]] = []
    start = end = -1
    for i in range(len(folded)):
        for width in widths:
            if folded[i : i + width] in grams:
                if i <= end:
                    end = max(end, i + width)
                else:
                    if end > start:
                        runs.append((start, end))
                    start, end = i, i + width
                break
    if end > start:
        runs.append((start, end))
    if not runs:
        return text
    parts: list[str] = []
    kept = 0
    for run_start, run_end in runs:
        parts.append(text[kept:run_start])
        parts.append(MASK)
        kept = run_end
    parts.append(text[kept:])
    return "".join(parts)
