//! Token counting: exact BPE counts for `OpenAI`'s `o200k_base` and `cl100k_base` (bundled
//! vocabularies, tiktoken's pre-tokenisation and merge rule) and a fast upper-bound estimator
//! for every other model family.
//!
//! - [`Encoding::count`]: `len(tiktoken.get_encoding(name).encode(text, disallowed_special=()))`
//!   (special-token text is counted as ordinary text, as `encode_ordinary` does).
//! - [`chat`]: `OpenAI`'s chat framing (per message, per name, reply priming), image tiles
//!   and tool definitions.
//! - [`estimate`]: byte-class upper bound, per family.

pub mod bpe;
mod cache;
pub mod chat;
pub mod estimate;
pub mod pretok;

use std::sync::LazyLock;

pub use cache::{clear_piece_caches, PIECE_CACHE_CAPACITY, PIECE_CACHE_MAX_BYTES};
pub use chat::{count_chat, image_tokens, ImageDetail, TextCounter};
pub use estimate::{estimate_tokens, Family};

use bpe::Vocab;
use pretok::Pattern;

/// Gzipped `o200k_base.tiktoken` (see `data/README.md`).
pub static O200K_BASE_GZ: &[u8] = include_bytes!("../../data/o200k_base.tiktoken.gz");
/// Gzipped `cl100k_base.tiktoken` (see `data/README.md`).
pub static CL100K_BASE_GZ: &[u8] = include_bytes!("../../data/cl100k_base.tiktoken.gz");

static O200K: LazyLock<Vocab> = LazyLock::new(|| Vocab::from_gzip(O200K_BASE_GZ));
static CL100K: LazyLock<Vocab> = LazyLock::new(|| Vocab::from_gzip(CL100K_BASE_GZ));

/// An exact BPE encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    /// Every supported encoding's name, as tiktoken spells it.
    pub const NAMES: [&'static str; 2] = ["o200k_base", "cl100k_base"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "o200k_base" => Some(Self::O200kBase),
            "cl100k_base" => Some(Self::Cl100kBase),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::O200kBase => "o200k_base",
            Self::Cl100kBase => "cl100k_base",
        }
    }

    /// The gzipped `.tiktoken` file compiled into the library.
    pub fn vocabulary_gz(self) -> &'static [u8] {
        match self {
            Self::O200kBase => O200K_BASE_GZ,
            Self::Cl100kBase => CL100K_BASE_GZ,
        }
    }

    fn vocab(self) -> &'static Vocab {
        match self {
            Self::O200kBase => &O200K,
            Self::Cl100kBase => &CL100K,
        }
    }

    fn pattern(self) -> Pattern {
        match self {
            Self::O200kBase => Pattern::O200k,
            Self::Cl100kBase => Pattern::Cl100k,
        }
    }

    /// Load the vocabulary and the character tables now instead of on first use
    /// (tens of milliseconds, once per process).
    pub fn warm_up(self) {
        pretok::warm_up();
        let _ = self.vocab().len();
    }

    /// Exact token count of `text`, equal to tiktoken's `len(enc.encode_ordinary(text))`.
    ///
    /// Pieces of up to [`PIECE_CACHE_MAX_BYTES`] bytes go through a bounded per-thread
    /// cache of piece → count ([`cache`]); the result equals [`Self::count_uncached`].
    pub fn count(self, text: &str) -> usize {
        cache::count(self, text)
    }

    /// [`Self::count`] without the per-thread piece cache (for tests and benchmarks).
    pub fn count_uncached(self, text: &str) -> usize {
        let vocab = self.vocab();
        let mut n = 0;
        pretok::for_each_piece(text, self.pattern(), |piece| n += vocab.count_piece(piece));
        n
    }
}
