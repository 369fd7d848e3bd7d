//! Bounded per-thread cache from pre-token bytes to token count.
//!
//! Chat text repeats the same words, so most pieces have been counted before. Each thread
//! keeps one cache per encoding, keyed by the piece's bytes packed into integers (no
//! allocation, no pointer chasing into the 200k-entry vocabulary); pieces longer than
//! [`PIECE_CACHE_MAX_BYTES`] bypass it. A map that reaches its capacity is cleared. A piece's
//! count depends only on the encoding and the piece, so cached counts equal fresh ones.

use std::cell::RefCell;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::bpe::Vocab;
use super::{pretok, Encoding};

/// Entries of pieces up to 15 bytes, per thread and encoding, before the map is cleared
/// (about 2 MB when full); pieces of 16 bytes and more have a quarter of that.
pub const PIECE_CACHE_CAPACITY: usize = 1 << 16;
const LONG_CAPACITY: usize = PIECE_CACHE_CAPACITY / 4;
/// Longest piece the cache keeps.
pub const PIECE_CACHE_MAX_BYTES: usize = 31;

/// Little-endian value of up to 8 bytes (at most two overlapping loads, no loop).
#[inline]
fn load(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    } else if n >= 4 {
        let lo = u64::from(u32::from_le_bytes(b[..4].try_into().expect("4 bytes")));
        let hi = u64::from(u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes")));
        lo | (hi << ((n - 4) * 8))
    } else if n >= 2 {
        let lo = u64::from(u16::from_le_bytes(b[..2].try_into().expect("2 bytes")));
        let hi = u64::from(u16::from_le_bytes(b[n - 2..].try_into().expect("2 bytes")));
        lo | (hi << ((n - 2) * 8))
    } else {
        b.first().copied().map_or(0, u64::from)
    }
}

/// Up to 15 bytes in the low 120 bits, `len` in the top byte. Keys are built in registers:
/// a padded stack buffer read back wider than it was written stalls on store forwarding.
#[inline]
fn pack15(b: &[u8], len: usize) -> u128 {
    debug_assert!(b.len() <= 15);
    let split = b.len().min(8);
    u128::from(load(&b[..split])) | (u128::from(load(&b[split..])) << 64) | ((len as u128) << 120)
}

/// This thread's cache for one encoding.
#[derive(Default)]
struct PieceCache {
    /// Pieces of 2 to 15 bytes, packed by [`pack15`].
    short: FxHashMap<u128, u32>,
    /// Pieces of 16 to [`PIECE_CACHE_MAX_BYTES`] bytes: the first 16 bytes, then the rest
    /// and the length packed by [`pack15`].
    long: FxHashMap<(u128, u128), u32>,
}

/// `map[key]`, or the piece's count computed, stored (after clearing a full map) and returned.
#[inline]
fn lookup<K: Eq + Hash>(
    map: &mut FxHashMap<K, u32>,
    capacity: usize,
    key: K,
    piece: &[u8],
    vocab: &Vocab,
) -> usize {
    if let Some(&count) = map.get(&key) {
        return count as usize;
    }
    let count = vocab.count_piece(piece);
    if map.len() >= capacity {
        map.clear();
    }
    map.insert(key, count as u32);
    count
}

impl PieceCache {
    #[inline]
    fn count(&mut self, vocab: &Vocab, piece: &[u8]) -> usize {
        let n = piece.len();
        if n <= 1 {
            // Every byte is a token.
            n
        } else if n <= 15 {
            let key = pack15(piece, n);
            lookup(&mut self.short, PIECE_CACHE_CAPACITY, key, piece, vocab)
        } else if n <= PIECE_CACHE_MAX_BYTES {
            let head = u128::from(load(&piece[..8])) | (u128::from(load(&piece[8..16])) << 64);
            let key = (head, pack15(&piece[16..], n));
            lookup(&mut self.long, LONG_CAPACITY, key, piece, vocab)
        } else {
            vocab.count_piece(piece)
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }
}

thread_local! {
    /// One cache per [`Encoding`], indexed by [`slot`].
    static CACHES: RefCell<[PieceCache; 2]> = RefCell::new(Default::default());
}

fn slot(encoding: Encoding) -> usize {
    match encoding {
        Encoding::O200kBase => 0,
        Encoding::Cl100kBase => 1,
    }
}

/// Empty this thread's piece caches (tests; memory).
pub fn clear_piece_caches() {
    CACHES.with(|c| {
        for cache in c.borrow_mut().iter_mut() {
            *cache = PieceCache::default();
        }
    });
}

/// [`Encoding::count`] through this thread's cache.
pub(super) fn count(encoding: Encoding, text: &str) -> usize {
    let vocab = encoding.vocab();
    CACHES.with(|c| {
        let mut caches = c.borrow_mut();
        let cache = &mut caches[slot(encoding)];
        let mut n = 0;
        pretok::for_each_piece(text, encoding.pattern(), |piece| {
            n += cache.count(vocab, piece);
        });
        n
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENCODINGS: [Encoding; 2] = [Encoding::O200kBase, Encoding::Cl100kBase];

    fn cached_len(encoding: Encoding) -> usize {
        CACHES.with(|c| c.borrow()[slot(encoding)].len())
    }

    #[test]
    fn cache_stays_bounded_and_exact_across_clears() {
        clear_piece_caches();
        // More distinct cacheable pieces than the capacity: the map is cleared mid-text.
        let text: String = (0..PIECE_CACHE_CAPACITY + 5000)
            .map(|i| {
                if i % 3 == 0 {
                    // 16 to 31 bytes: the long map, whose capacity is smaller.
                    format!(" wordwordwordword{i:x}q")
                } else {
                    format!(" w{i:x}q")
                }
            })
            .collect();
        for encoding in ENCODINGS {
            let first = encoding.count(&text);
            assert!(cached_len(encoding) <= PIECE_CACHE_CAPACITY);
            assert!(cached_len(encoding) > 0);
            assert_eq!(first, encoding.count_uncached(&text));
            // Warm (and partly cleared) cache: same counts.
            assert_eq!(encoding.count(&text), first);
        }
        clear_piece_caches();
        assert_eq!(cached_len(Encoding::O200kBase), 0);
        assert_eq!(
            Encoding::O200kBase.count(&text),
            Encoding::O200kBase.count_uncached(&text)
        );
    }

    #[test]
    fn loads_are_little_endian() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        for n in 0..=9 {
            let mut padded = [0u8; 8];
            let m = n.min(8);
            padded[..m].copy_from_slice(&bytes[..m]);
            assert_eq!(load(&bytes[..n]), u64::from_le_bytes(padded), "{n}");
        }
    }

    #[test]
    fn keys_distinguish_trailing_zero_bytes() {
        clear_piece_caches();
        for encoding in ENCODINGS {
            let long = "x".repeat(16);
            for text in [
                "ab",
                "ab\0",
                "ab\0\0",
                "\0\0",
                "\0\0\0",
                &format!("{long}ab"),
                &format!("{long}ab\0"),
                &format!("{long}\0"),
                &long,
            ] {
                assert_eq!(
                    encoding.count(text),
                    encoding.count_uncached(text),
                    "{text:?}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn cached_counts_equal_uncached(
            texts in proptest::collection::vec(
                "\\PC{0,60}|[aA1 '\\r\\n\\t.é中ſ/\\x{301}\\x{a0}\\x00]{0,40}|( ?[a-zA-Z]{1,12}[ .,'!]?){0,12}",
                1..8,
            ),
            clear_between in any::<bool>(),
        ) {
            for encoding in ENCODINGS {
                for text in &texts {
                    let uncached = encoding.count_uncached(text);
                    prop_assert_eq!(encoding.count(text), uncached);
                    if clear_between {
                        clear_piece_caches();
                    }
                    // Second pass: served from the cache (or refilled after the clear).
                    prop_assert_eq!(encoding.count(text), uncached);
                }
            }
        }
    }
}
