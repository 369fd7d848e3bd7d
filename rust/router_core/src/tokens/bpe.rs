//! Vocabularies (bundled, gzipped `.tiktoken` files) and byte-pair merge counting.
//!
//! The merge rule is tiktoken's: repeatedly merge the adjacent pair whose concatenation has
//! the lowest rank, the leftmost one on ties, until no adjacent pair is in the vocabulary.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;

use rustc_hash::FxHashMap;

/// Pieces longer than this use the O(n log n) heap merge instead of tiktoken's O(n²) scan.
const LONG_PIECE: usize = 256;

/// Token bytes → rank.
pub struct Vocab {
    ranks: FxHashMap<Box<[u8]>, u32>,
}

fn base64_value(b: u8) -> Option<u32> {
    Some(u32::from(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

fn base64_decode(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for &b in chunk {
            acc = (acc << 6) | base64_value(b)?;
        }
        let bits = chunk.len() * 6;
        acc <<= 24 - bits;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..=bits / 8]);
    }
    Some(())
}

impl Vocab {
    /// Parse a gzipped `.tiktoken` file (`base64 rank` per line).
    ///
    /// # Panics
    /// On a malformed file: the files are compiled in and checked by tests.
    pub fn from_gzip(gz: &[u8]) -> Self {
        let text = gunzip(gz);
        let mut ranks =
            FxHashMap::with_capacity_and_hasher(text.len() / 12, rustc_hash::FxBuildHasher);
        let mut buf = Vec::with_capacity(128);
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let space = line
                .iter()
                .position(|&b| b == b' ')
                .expect("`token rank` line");
            base64_decode(&line[..space], &mut buf).expect("base64 token");
            let rank: u32 = std::str::from_utf8(&line[space + 1..])
                .ok()
                .and_then(|r| r.trim().parse().ok())
                .expect("numeric rank");
            ranks.insert(buf.clone().into_boxed_slice(), rank);
        }
        Self { ranks }
    }

    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    #[inline]
    fn rank(&self, bytes: &[u8]) -> u32 {
        self.ranks.get(bytes).copied().unwrap_or(u32::MAX)
    }

    /// Tokens of one pre-tokenised piece.
    #[inline]
    pub fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() <= 1 || self.ranks.contains_key(piece) {
            return usize::from(!piece.is_empty());
        }
        if piece.len() > LONG_PIECE {
            self.merge_count_heap(piece)
        } else {
            self.merge_count_scan(piece)
        }
    }

    /// tiktoken's `byte_pair_merge`, counting the final parts.
    pub fn merge_count_scan(&self, piece: &[u8]) -> usize {
        if piece.len() < 2 {
            return piece.len();
        }
        // Pieces up to `LONG_PIECE` bytes (all of them on the `count_piece` path) merge in a
        // stack buffer: no allocation per piece.
        let mut stack = [(0usize, 0u32); LONG_PIECE + 1];
        let mut heap = Vec::new();
        let parts: &mut [(usize, u32)] = if piece.len() < stack.len() {
            &mut stack[..=piece.len()]
        } else {
            heap.resize(piece.len() + 1, (0usize, 0u32));
            &mut heap
        };
        self.merge_scan_in(piece, parts)
    }

    /// The scan merge with `parts` (length `piece.len() + 1`) as its working list.
    fn merge_scan_in(&self, piece: &[u8], parts: &mut [(usize, u32)]) -> usize {
        let mut len = piece.len() + 1;
        let mut min = (u32::MAX, usize::MAX);
        for i in 0..piece.len() - 1 {
            let rank = self.rank(&piece[i..i + 2]);
            if rank < min.0 {
                min = (rank, i);
            }
            parts[i] = (i, rank);
        }
        parts[piece.len() - 1] = (piece.len() - 1, u32::MAX);
        parts[piece.len()] = (piece.len(), u32::MAX);
        let rank_at = |parts: &[(usize, u32)], len: usize, i: usize| {
            if i + 3 < len {
                self.rank(&piece[parts[i].0..parts[i + 3].0])
            } else {
                u32::MAX
            }
        };
        while min.0 != u32::MAX {
            let i = min.1;
            if i > 0 {
                parts[i - 1].1 = rank_at(parts, len, i - 1);
            }
            parts[i].1 = rank_at(parts, len, i);
            parts.copy_within(i + 2..len, i + 1);
            len -= 1;
            min = (u32::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..len - 1].iter().enumerate() {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
        }
        len - 1
    }

    /// The same merges with a heap and a linked list: O(n log n) for long pieces.
    pub fn merge_count_heap(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        // Node i covers piece[i..end[i]]; next/prev link live nodes; version invalidates
        // stale heap entries.
        let mut end: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut version = vec![0u32; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            let rank = self.rank(&piece[i..i + 2]);
            if rank != u32::MAX {
                heap.push(Reverse((rank, i, 0u32)));
            }
        }
        let mut count = n;
        while let Some(Reverse((_, i, v))) = heap.pop() {
            if version[i] != v || end[i] == usize::MAX {
                continue;
            }
            // Merge node i with its successor (which starts at end[i]).
            let next = end[i];
            end[i] = end[next];
            end[next] = usize::MAX;
            if end[i] < n {
                prev[end[i]] = i;
            }
            count -= 1;
            version[i] += 1;
            if end[i] < n {
                let rank = self.rank(&piece[i..end[end[i]]]);
                if rank != u32::MAX {
                    heap.push(Reverse((rank, i, version[i])));
                }
            }
            let p = prev[i];
            if p != usize::MAX {
                version[p] += 1;
                let rank = self.rank(&piece[p..end[i]]);
                if rank != u32::MAX {
                    heap.push(Reverse((rank, p, version[p])));
                }
            }
        }
        count
    }
}

/// Decompress a bundled gzip file.
///
/// # Panics
/// When the compiled-in bytes are not gzip (a build defect caught by tests).
pub fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(gz.len() * 3);
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("bundled vocabulary is valid gzip");
    out
}
