//! Our BPE counter against the `bpe-openai` crate: agreement and single-thread throughput.
//!
//! Ignored in normal runs. Dump the corpus and run:
//!
//! ```sh
//! python -c "import json,sys; sys.path.insert(0,'tests/native'); import corpus; \
//!     json.dump(corpus.build_corpus(), open('/tmp/corpus.json','w'))"
//! TOKENS_CORPUS=/tmp/corpus.json cargo test --release --test tokens_eval -- --ignored --nocapture
//! ```

use std::time::Instant;

use router_core::Encoding;

fn corpus() -> Vec<String> {
    let path = std::env::var("TOKENS_CORPUS").expect("TOKENS_CORPUS=path of a JSON list");
    serde_json::from_slice(&std::fs::read(path).expect("corpus file")).expect("JSON list")
}

fn throughput(corpus: &[String], f: impl Fn(&str) -> usize) -> (f64, usize) {
    let bytes: usize = corpus.iter().map(String::len).sum();
    let mut best = f64::INFINITY;
    let mut total = 0;
    for _ in 0..5 {
        let start = Instant::now();
        total = corpus.iter().map(|t| f(t)).sum();
        best = best.min(start.elapsed().as_secs_f64());
    }
    (bytes as f64 / best / 1e6, total)
}

#[test]
#[ignore = "evaluation: needs TOKENS_CORPUS and a release build"]
fn compare_with_bpe_openai() {
    let corpus = corpus();
    for (encoding, theirs) in [
        (Encoding::O200kBase, bpe_openai::o200k_base()),
        (Encoding::Cl100kBase, bpe_openai::cl100k_base()),
    ] {
        encoding.warm_up();
        theirs.count("warm up");
        let mismatches: Vec<&String> = corpus
            .iter()
            .filter(|t| encoding.count(t) != theirs.count(t.as_str()))
            .collect();
        let (ours_mbs, ours_total) = throughput(&corpus, |t| encoding.count(t));
        let (theirs_mbs, theirs_total) = throughput(&corpus, |t| theirs.count(t));
        println!(
            "{}: ours {ours_mbs:.1} MB/s ({ours_total} tokens), bpe-openai {theirs_mbs:.1} MB/s \
             ({theirs_total} tokens), {} of {} strings differ",
            encoding.name(),
            mismatches.len(),
            corpus.len()
        );
        for t in mismatches.iter().take(5) {
            println!(
                "  {t:?}: ours {} bpe-openai {}",
                encoding.count(t),
                theirs.count(t.as_str())
            );
        }
    }
}
