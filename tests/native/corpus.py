"""A deterministic corpus of ≥10,000 varied strings for token-counting tests and benches.

Languages and scripts, code, emoji, whitespace runs, long repeats, contractions, special-token
look-alikes, random code points and hypothesis-generated unicode (fixed seed). Also the
estimator's calibration: ``python tests/native/corpus.py --calibrate`` fits the coefficients
of ``rust/router_core/src/tokens/estimate.rs`` against exact counts (needs ``tiktoken``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "rust" / "router_core" / "data"
BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
ENCODINGS = ("o200k_base", "cl100k_base")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog. It's 9:41 AM, isn't it?",
    "Le cœur a ses raisons que la raison ne connaît point. Où est l'hôtel ?",
    "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg; Straße, Maß.",
    "El pingüino Wenceslao hizo kilómetros bajo exhaustiva lluvia y frío, añoraba.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Привет, мир!",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Γειά σου Κόσμε!",
    "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה. שלום עולם",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार",
    "我能吞下玻璃而不伤身体。你好，世界！今天天气很好，我们去公园散步吧。",
    "いろはにほへと ちりぬるを わかよたれそ つねならむ。こんにちは世界、カタカナ。",
    "다람쥐 헌 쳇바퀴에 타고파. 안녕하세요 세계! 한국어 텍스트입니다.",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "Tiếng Việt có dấu: Chào thế giới, tôi là một người học máy.",
    "Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul'da ıslak ğ.",
    "Ǆǅǆ ǈǉ ᾈᾉ ﬁ ﬂ Ⅻ ⅻ ½ ² ³ ٣ ४ 〇 Ⅷ ǲ ʰ ˈ ᵃ",
    "e\u0301 a\u0300\u0323 n\u0303 \u0915\u093f \u05d1\u05bc combining marks",
    "don't I'll you're we've she'd it's THEY'RE I'M 'S 'ſ x'ſ O'Neil rock'n'roll",
    "<|endoftext|> <|im_start|>user<|im_end|> <|fim_prefix|> special look-alikes",
]
CODE = [
    "def f(x: int) -> int:\n    return x * 2  # double\n\n\nclass A:\n\tpass\n",
    'fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!("{v:?}");\n}\n',
    "const x = async (a, b) => { await fetch(`/api/${a}?b=${b}`); };\r\n",
    '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 1}',
    '<div class="a"><p>Hello &amp; <b>bye</b></p></div>\n<!-- comment -->',
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "https://example.com/path/to/page?query=1&x=y#frag  mailto:a@b.co  C:\\Users\\x",
    "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$  a_{i,j} = b^{2} + 3.14159e-10",
    "    if (a != b && c <= d || !e) { x += 1; y -= 2; z **= 3; } // done //// ///",
    '#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo "$f"; done\n',
]
EMOJI = [
    "😀😃😄😁😆 👍🏽 👩‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️‍🔥 🧑🏿‍💻 ✨🚀🔥💯",
    "I ❤️ NY 🗽! 🎉🎉🎉 ok👌 #️⃣ 1️⃣ ©️ ™️",
]
WHITESPACE = [
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "\n\n\n",
    "  \n  ",
    " \t \n \r\n\t ",
    "\u00a0\u2003\u3000\u200b\u2028\u2029\u0085",
    "a  b   c    d",
    "x\n \ny",
    "end   ",
    "   start",
    " \r\r\n\n x",
    "a\u3000b\u00a0c",
    "1 2 3 4",
    "!\n\n/",
]
FRAGMENTS = SENTENCES + CODE + EMOJI + WHITESPACE


def _repeats() -> list[str]:
    out = []
    for unit in ["a", "ab", " ", "\n", "0", "12", "é", "中", "😀", "-", " the", "\t\n", "A"]:
        for n in (2, 3, 7, 64, 300, 1000):
            out.append(unit * n)
    out.append("abcdefghijklmnopqrstuvwxyz" * 40)
    out.append("x" * 5000)
    out.append("1234567890" * 100)
    return out


def _random_codepoints(rng: random.Random, n: int) -> list[str]:
    planes = [(0x20, 0x7F), (0x80, 0x800), (0x800, 0xD800), (0xE000, 0x10000), (0x10000, 0x30000)]
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(planes)
            chars.append(chr(rng.randrange(lo, hi)))
        out.append("".join(chars))
    return out


def _mixes(rng: random.Random, n: int) -> list[str]:
    words = " ".join(FRAGMENTS).split(" ")
    seps = [" ", "  ", "\n", ", ", ". ", "\t", "", "'", "/", "\r\n", "—", "'s "]
    out = []
    for _ in range(n):
        k = rng.randint(1, 30)
        out.append("".join(rng.choice(words) + rng.choice(seps) for _ in range(k)))
    return out


def _ascii_noise(rng: random.Random, n: int) -> list[str]:
    alphabets = [
        "abcdefghijklmnopqrstuvwxyz",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "abcdefghijklmnopqrstuvwxyz0123456789 ",
        "0123456789",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \n",
        "".join(chr(c) for c in range(32, 127)) + "\n\t",
        "aA1 '\n",
    ]
    return [
        "".join(rng.choice(a) for _ in range(rng.randint(1, 80)))
        for a in (rng.choice(alphabets) for _ in range(n))
    ]


def _hypothesis_texts(n: int) -> list[str]:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    out: list[str] = []

    @settings(
        max_examples=n // 10,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.text(max_size=60), min_size=10, max_size=10))
    def collect(texts: list[str]) -> None:
        out.extend(texts)

    collect()
    return out


@functools.lru_cache(maxsize=1)
def build_corpus() -> tuple[str, ...]:
    """≥10,000 strings, the same on every run."""
    rng = random.Random(20240601)
    corpus = list(FRAGMENTS) + _repeats()
    corpus += _mixes(rng, 4000)
    corpus += _ascii_noise(rng, 1500)
    corpus += _random_codepoints(rng, 1500)
    corpus += _hypothesis_texts(3000)
    corpus += [a + b for a, b in zip(FRAGMENTS, reversed(FRAGMENTS), strict=True)]
    return tuple(corpus)


def offline_tiktoken_cache() -> str:
    """Write the bundled vocabularies, gunzipped, where tiktoken looks for its cached
    downloads (``sha1(blob URL)`` in ``TIKTOKEN_CACHE_DIR``) and point tiktoken there.

    Must run before tiktoken loads an encoding; tiktoken then never touches the network (it
    checks the cached file's sha256 against its pinned hash, which these files match).
    """
    cache = os.environ.get("ROUTEGATE_TIKTOKEN_CACHE") or tempfile.mkdtemp(prefix="tiktoken-")
    for name in ENCODINGS:
        target = Path(cache) / hashlib.sha1(BLOB.format(name).encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress((DATA / f"{name}.tiktoken.gz").read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    os.environ["ROUTEGATE_TIKTOKEN_CACHE"] = cache
    return cache


WELL_COVERED = (
    (0x00C0, 0x024F),
    (0x0370, 0x03FF),
    (0x0400, 0x052F),
    (0x0590, 0x05FF),
    (0x0600, 0x06FF),
    (0x2010, 0x2027),
    (0x3040, 0x30FF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
)


def rare_bytes(text: str) -> int:
    """UTF-8 bytes of 2- and 3-byte characters outside ``estimate.rs``'s well-covered
    scripts: charged one token per byte, outside the fit."""
    return sum(
        len(ch.encode())
        for ch in text
        if (ord(ch) < 0x20 and ch not in "\t\n\x0b\x0c\r")
        or ord(ch) == 0x7F
        or (0x80 <= ord(ch) < 0x10000 and not any(lo <= ord(ch) <= hi for lo, hi in WELL_COVERED))
    )


def features(text: str) -> list[int]:
    """The estimator's fitted features (must match ``estimate.rs``'s ``features``)."""
    counts = [0] * 10
    prev = None
    digit_run = 0
    for ch in text:
        o = ord(ch)
        if ch.isascii() and ch.isalpha():
            counts[1] += 1
            cls = "letter"
        elif "0" <= ch <= "9":
            if prev != "digit" or digit_run == 3:
                counts[2] += 1
                digit_run = 0
            digit_run += 1
            cls = "digit"
        elif ch == " ":
            counts[4] += 1
            cls = "space"
        elif ch in "\t\n\x0b\x0c\r":
            counts[5] += 1
            cls = "space"
        elif o < 0x80:
            if 0x20 <= o < 0x7F:
                counts[3] += 1
            cls = "punct"
        else:
            if o >= 0x10000 or any(lo <= o <= hi for lo, hi in WELL_COVERED):
                counts[7 if o < 0x800 else 8 if o < 0x10000 else 9] += 1
            cls = "nonascii"
        if cls != prev:
            counts[6] += 1
            prev = cls
    counts[0] = int(bool(text))
    return counts


def calibrate() -> None:  # pragma: no cover - a maintenance tool
    """Fit non-negative coefficients c with F·c ≥ exact for every corpus string, minimising
    Σ F·c: a linear programme (scipy when importable, else coordinate descent)."""
    import numpy as np

    offline_tiktoken_cache()
    import tiktoken

    corpus = build_corpus()
    feats = np.array([features(t) for t in corpus], dtype=float)
    for name in ENCODINGS:
        enc = tiktoken.get_encoding(name)
        exact = np.array([len(enc.encode_ordinary(t)) for t in corpus], dtype=float)
        exact -= np.array([rare_bytes(t) for t in corpus], dtype=float)  # charged outside
        try:
            from scipy.optimize import linprog

            fit = linprog(feats.sum(axis=0), A_ub=-feats, b_ub=-exact, bounds=(0, None))
            coef = fit.x
        except ImportError:
            coef = np.array([0, 1, 3, 1, 1, 1, 0, 2, 3, 4], dtype=float)
            for _ in range(10):
                for k in range(len(coef)):
                    lo, hi = 0.0, coef[k]
                    for _ in range(30):
                        trial = coef.copy()
                        trial[k] = (lo + hi) / 2
                        if np.all(feats @ trial >= exact):
                            hi = trial[k]
                        else:
                            lo = trial[k]
                    coef[k] = hi
        margin = np.round(coef * 1.05 + 0.005, 3)
        est = feats @ margin
        ok = exact > 0
        over = est[ok] / exact[ok]
        print(name, "coef", margin.tolist(), "feasible", bool(np.all(est >= exact)))
        print(f"  overestimate mean {over.mean():.2f}x max {over.max():.2f}x")


def main(argv: list[str]) -> Any:
    if "--calibrate" in argv:
        return calibrate()
    print(len(build_corpus()), "strings")
    return None


if __name__ == "__main__":
    main(sys.argv)
