//! Upper-bound token estimator: one pass over the bytes, no vocabulary.
//!
//! Features (see `tests/native/corpus.py`, which computes the same ones to calibrate):
//! ASCII letters, groups of up to 3 ASCII digits per digit run, ASCII punctuation/symbols,
//! spaces, other ASCII whitespace, runs (changes between those classes and non-ASCII), and
//! non-ASCII characters by UTF-8 length (2, 3, 4 bytes). The o200k bound is a linear form in
//! them with coefficients fitted so that it is never below the exact `o200k_base` count on the
//! calibration corpus (plus a margin); a family's bound multiplies it by the family's ratio.
//! Every bound is capped by the byte length: no byte-level BPE token is shorter than a byte.

/// Model families of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Gpt4o,
    Gpt41,
    OSeries,
    Gpt5,
    GptOss,
    TextEmbedding3,
    Claude,
    Gemini,
    DeepSeek,
    Grok,
    Mistral,
    Llama,
    Qwen,
}

/// Coefficients of the linear bound, in feature order (see [`Features`]).
type Coefficients = [f64; 10];

/// Fitted on the corpus against `o200k_base` (`python tests/native/corpus.py --calibrate`:
/// a linear programme, then +5% and +0.005).
const O200K_COEF: Coefficients = [
    5.103, 0.639, 1.907, 0.718, 0.342, 0.134, 0.097, 1.322, 2.9, 4.879,
];
/// Fitted on the corpus against `cl100k_base`.
const CL100K_COEF: Coefficients = [
    5.78, 0.697, 1.44, 0.685, 0.322, 0.284, 0.088, 1.522, 3.006, 4.714,
];

impl Family {
    /// Every family name, as the catalog spells it.
    pub const NAMES: [&'static str; 13] = [
        "gpt-4o",
        "gpt-4.1",
        "o-series",
        "gpt-5",
        "gpt-oss",
        "text-embedding-3",
        "claude",
        "gemini",
        "deepseek",
        "grok",
        "mistral",
        "llama",
        "qwen",
    ];
    const ALL: [Self; 13] = [
        Self::Gpt4o,
        Self::Gpt41,
        Self::OSeries,
        Self::Gpt5,
        Self::GptOss,
        Self::TextEmbedding3,
        Self::Claude,
        Self::Gemini,
        Self::DeepSeek,
        Self::Grok,
        Self::Mistral,
        Self::Llama,
        Self::Qwen,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|&n| n == name)
            .map(|i| Self::ALL[i])
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|&f| f == self).unwrap_or(0)]
    }

    /// The exact encoding of an `OpenAI` family (`gpt-oss` uses `o200k_harmony`, whose
    /// ordinary-text tokens are `o200k_base`'s); `None` for other vendors' families.
    pub fn encoding(self) -> Option<super::Encoding> {
        match self {
            Self::Gpt4o | Self::Gpt41 | Self::OSeries | Self::Gpt5 | Self::GptOss => {
                Some(super::Encoding::O200kBase)
            }
            Self::TextEmbedding3 => Some(super::Encoding::Cl100kBase),
            _ => None,
        }
    }

    /// Assumed tokens of this family per `o200k_base` token (their tokenizers are not
    /// available offline; see docs/tokens.md for the sources of these figures).
    pub fn ratio(self) -> f64 {
        match self {
            Self::Gpt4o
            | Self::Gpt41
            | Self::OSeries
            | Self::Gpt5
            | Self::GptOss
            | Self::TextEmbedding3 => 1.0,
            Self::Claude => 1.30,
            Self::Mistral | Self::Llama => 1.25,
            Self::Gemini | Self::DeepSeek | Self::Grok | Self::Qwen => 1.15,
        }
    }
}

/// Byte-class features of a text (one pass).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Features {
    pub bytes: u64,
    /// [1 (constant), letters, digit groups, punctuation, spaces, other whitespace, runs,
    /// 2-byte chars, 3-byte chars, 4-byte chars] of well-covered scripts
    pub counts: [u64; 10],
    /// UTF-8 bytes of characters outside the well-covered scripts, charged one token each.
    pub rare_bytes: u64,
    /// UTF-8 bytes of the 2- and 3-byte characters inside them (counts[7] and counts[8]).
    pub covered_bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    None,
    Letter,
    Digit,
    Punct,
    Space,
    NonAscii,
}

/// Compute the features of `text`.
pub fn features(text: &str) -> Features {
    let s = text.as_bytes();
    let mut c = [0u64; 10];
    let mut prev = Class::None;
    let mut digit_run = 0u32;
    let mut rare_bytes = 0u64;
    let mut covered_bytes = 0u64;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let (class, len) = match b {
            b'a'..=b'z' | b'A'..=b'Z' => {
                c[1] += 1;
                (Class::Letter, 1)
            }
            b'0'..=b'9' => {
                if prev != Class::Digit || digit_run == 3 {
                    c[2] += 1;
                    digit_run = 0;
                }
                digit_run += 1;
                (Class::Digit, 1)
            }
            b' ' => {
                c[4] += 1;
                (Class::Space, 1)
            }
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => {
                c[5] += 1;
                (Class::Space, 1)
            }
            0..=0x1f | 0x7f => {
                rare_bytes += 1; // control characters: never merged, one token each at worst
                (Class::Punct, 1)
            }
            0..=0x7f => {
                c[3] += 1;
                (Class::Punct, 1)
            }
            0x80..=0xdf => {
                if well_covered(code_point(s, i, 2)) {
                    c[7] += 1;
                    covered_bytes += 2;
                } else {
                    rare_bytes += 2;
                }
                (Class::NonAscii, 2)
            }
            0xe0..=0xef => {
                if well_covered(code_point(s, i, 3)) {
                    c[8] += 1;
                    covered_bytes += 3;
                } else {
                    rare_bytes += 3;
                }
                (Class::NonAscii, 3)
            }
            _ => {
                c[9] += 1;
                (Class::NonAscii, 4)
            }
        };
        if class != prev {
            c[6] += 1;
            prev = class;
        }
        i += len;
    }
    c[0] = u64::from(!s.is_empty());
    Features {
        bytes: s.len() as u64,
        counts: c,
        rare_bytes,
        covered_bytes,
    }
}

/// The code point of the `len`-byte UTF-8 sequence at `s[i]` (`s` is valid UTF-8).
fn code_point(s: &[u8], i: usize, len: usize) -> u32 {
    let lead = u32::from(s[i]) & if len == 2 { 0x1f } else { 0x0f };
    s[i + 1..i + len]
        .iter()
        .fold(lead, |cp, &b| (cp << 6) | (u32::from(b) & 0x3f))
}

/// Scripts the vocabularies cover well enough for the fitted per-character coefficients.
/// Any other character may fall back to one token per byte (controls, private use, rare
/// scripts and symbols), so it is charged its byte length: the bound then holds by
/// construction for it, not by calibration.
fn well_covered(cp: u32) -> bool {
    matches!(
        cp,
        0x00c0..=0x024f     // Latin-1 letters, Latin Extended-A/B
            | 0x0370..=0x03ff // Greek
            | 0x0400..=0x052f // Cyrillic
            | 0x0590..=0x05ff // Hebrew
            | 0x0600..=0x06ff // Arabic
            | 0x2010..=0x2027 // dashes, quotes, ellipsis
            | 0x3040..=0x30ff // Hiragana, Katakana
            | 0x4e00..=0x9fff // CJK Unified Ideographs
            | 0xac00..=0xd7a3 // Hangul syllables
    )
}

fn linear(f: &Features, coef: &Coefficients, per_byte_non_ascii: bool) -> f64 {
    let fitted: f64 = f.counts.iter().zip(coef).map(|(&n, &k)| n as f64 * k).sum();
    if per_byte_non_ascii {
        // cl100k covers non-English scripts too unevenly for a per-character coefficient
        let per_char = f.counts[7] as f64 * coef[7] + f.counts[8] as f64 * coef[8];
        return fitted - per_char + (f.covered_bytes + f.rare_bytes) as f64;
    }
    fitted + f.rare_bytes as f64
}

/// Upper bound of the `o200k_base` (`cl100k_base` for `text-embedding-3`) count of `text`,
/// times the family's ratio; never above the byte length.
pub fn estimate_tokens(text: &str, family: Family) -> u64 {
    estimate_from_features(&features(text), family)
}

/// [`estimate_tokens`] from precomputed features.
pub fn estimate_from_features(f: &Features, family: Family) -> u64 {
    let cl100k = family == Family::TextEmbedding3;
    let coef = if cl100k { &CL100K_COEF } else { &O200K_COEF };
    let bound = (linear(f, coef, cl100k) * family.ratio()).ceil() as u64;
    bound.min(f.bytes)
}
