//! Token counting: known tiktoken values, merge variants agree, pieces tile the input,
//! estimator bounds, chat framing.

use proptest::prelude::*;
use router_core::tokens::bpe::Vocab;
use router_core::tokens::pretok::{pieces, Pattern};
use router_core::tokens::{estimate_tokens, image_tokens, ImageDetail, O200K_BASE_GZ};
use router_core::{count_chat, Encoding, Family};
use std::sync::LazyLock;

static VOCAB: LazyLock<Vocab> = LazyLock::new(|| Vocab::from_gzip(O200K_BASE_GZ));

#[test]
fn known_counts() {
    // Values from tiktoken 0.14 (`len(enc.encode_ordinary(text))`).
    let o = Encoding::O200kBase;
    let c = Encoding::Cl100kBase;
    assert_eq!(o.count(""), 0);
    assert_eq!(o.count("hello world"), 2);
    assert_eq!(c.count("hello world"), 2);
    assert_eq!(
        o.count("fjzantdjskaiyipmbnoaf"),
        o.count("fjzantdjskaiyipmbnoaf")
    );
    assert_eq!(
        pieces("I'm here  now\n\n ok", Pattern::O200k),
        ["I'm", " here", " ", " now", "\n\n", " ok"]
    );
    assert_eq!(
        pieces("x'ſ 12345 a/b\r\n", Pattern::O200k),
        ["x'ſ", " ", "123", "45", " a", "/b", "\r\n"]
    );
    assert_eq!(pieces("abc   ", Pattern::Cl100k), ["abc", "   "]);
}

#[test]
fn vocab_sizes() {
    assert_eq!(VOCAB.len(), 199_998);
}

#[test]
fn images_follow_the_tile_formula() {
    assert_eq!(image_tokens(ImageDetail::Low, Some((4096, 4096))), 85);
    assert_eq!(image_tokens(ImageDetail::High, None), 765);
    assert_eq!(image_tokens(ImageDetail::High, Some((1024, 1024))), 765);
    assert_eq!(image_tokens(ImageDetail::High, Some((2048, 4096))), 1105);
    assert_eq!(image_tokens(ImageDetail::High, Some((100, 100))), 255);
}

#[test]
fn chat_framing() {
    let n = count_chat(
        br#"[{"role":"user","content":"hello world"}]"#,
        None,
        Encoding::O200kBase,
    );
    assert_eq!(n, Ok(3 + 1 + 2 + 3));
    assert!(count_chat(b"{}", None, Encoding::O200kBase).is_err());
    assert!(count_chat(b"[1]", None, Encoding::O200kBase).is_err());
}

proptest! {
    #[test]
    fn heap_merge_equals_scan_merge(piece in proptest::collection::vec(
        prop_oneof![Just(b'a'), Just(b'b'), Just(b' '), Just(b'x'), any::<u8>()], 2..400)) {
        prop_assert_eq!(VOCAB.merge_count_heap(&piece), VOCAB.merge_count_scan(&piece));
    }

    #[test]
    fn pieces_tile_the_text(text in "\\PC{0,80}|[aA1 '\\r\\n\\t.é中ſ/]{0,60}") {
        for pattern in [Pattern::O200k, Pattern::Cl100k] {
            let p = pieces(&text, pattern);
            prop_assert_eq!(p.concat(), text.clone());
            prop_assert!(p.iter().all(|s| !s.is_empty()));
        }
    }

    #[test]
    fn counts_are_bounded_by_bytes(text in "\\PC{0,120}") {
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let n = encoding.count(&text);
            prop_assert!(n <= text.len());
            prop_assert_eq!(n == 0, text.is_empty());
        }
    }

    #[test]
    fn estimator_bounds_openai_counts(text in "\\PC{0,120}|[a-z ]{0,80}|[0-9 .,]{0,40}") {
        for family in [Family::Gpt4o, Family::Gpt5, Family::OSeries] {
            prop_assert!(estimate_tokens(&text, family) >= Encoding::O200kBase.count(&text) as u64);
        }
        prop_assert!(
            estimate_tokens(&text, Family::TextEmbedding3)
                >= Encoding::Cl100kBase.count(&text) as u64
        );
        prop_assert!(estimate_tokens(&text, Family::Claude) <= text.len() as u64);
    }
}
