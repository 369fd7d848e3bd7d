//! Routegate's native core: per-request computation with no I/O and no configured policy.
//!
//! Plain Rust throughout; the Python bindings live in `py` behind the `python` feature so
//! `cargo test` and benches link without an interpreter.

pub mod analyze;
pub mod candidates;
pub mod codes;
pub mod depth;
pub mod error;
pub mod relay;
pub mod route;
pub mod scoring;
pub mod sse;
pub mod stitch;
pub mod task;
pub mod tokens;
pub mod translate;

#[cfg(feature = "python")]
mod py;

pub use analyze::{
    analyze, count_body_tokens, estimate_prompt_tokens, Analysis, PromptSize, EXACT_BODY_LIMIT,
};
pub use candidates::{
    filter, filter_explained, first_failed, scaled_prompt_tokens, CandidateTable, Columns,
    Constraints, FilterOutcome, Health,
};
pub use codes::*;
pub use depth::{json_depth_exceeds, MAX_JSON_DEPTH};
pub use error::CoreError;
pub use relay::{StreamRelay, Usage};
pub use route::{route, route_explained, RouteRequest, RouteResult};
pub use scoring::{rank, Ranking, ScoreInputs, Weights};
pub use sse::{SseEvent, SseEventRef, SseParser};
pub use stitch::{delivered, Delivered, Stitch};
pub use task::{classify_text, Classification, TaskSignals, TASKS};
pub use tokens::{count_chat, estimate_tokens, Encoding, Family};
pub use translate::{
    AnthropicStreamRelay, GeminiStreamRelay, OpenAIToAnthropicRelay, ReverseState,
};
