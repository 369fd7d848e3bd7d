//! Stream translation between Anthropic Messages events and OpenAI `chat.completion.chunk`s.
//!
//! - [`AnthropicStreamRelay`]: upstream Anthropic SSE bytes → OpenAI chunk bytes for
//!   chat-completions clients, with the same progress and usage bookkeeping as
//!   [`crate::StreamRelay`].
//! - [`GeminiStreamRelay`]: upstream Gemini `streamGenerateContent` SSE bytes → OpenAI chunk
//!   bytes, with the same bookkeeping.
//! - [`OpenAIToAnthropicRelay`]: the gateway's OpenAI-format stream → Anthropic SSE bytes for
//!   `/v1/messages` clients.
//!
//! Both are incremental (reads may split the stream anywhere), do no I/O, and never panic:
//! events they cannot understand are counted as malformed and skipped.

// "OpenAI" is a name in prose, not an identifier to put in backticks.
#![allow(clippy::doc_markdown)]

pub mod anthropic;
pub mod gemini;
mod json;
pub mod openai;
mod to_anthropic;
mod to_openai;

pub use gemini::GeminiStreamRelay;
pub use to_anthropic::{OpenAIToAnthropicRelay, ReverseState};
pub use to_openai::AnthropicStreamRelay;

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason_for(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason_for(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The gateway's error `type` (SPEC §6) → the closest Anthropic error `type`.
pub fn anthropic_error_type(openai_type: &str, code: Option<&str>) -> &'static str {
    if code == Some("provider_timeout") {
        return "timeout_error";
    }
    match openai_type {
        "invalid_request_error" | "policy_error" => "invalid_request_error",
        "authentication_error" => "authentication_error",
        "billing_error" => "billing_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "service_unavailable_error" | "overloaded_error" => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_mappings() {
        let pairs = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ];
        for (anthropic, openai) in pairs {
            assert_eq!(finish_reason_for(anthropic), openai, "{anthropic}");
        }
        for reason in ["end_turn", "max_tokens", "tool_use", "refusal"] {
            assert_eq!(stop_reason_for(finish_reason_for(reason)), reason);
        }
        assert_eq!(stop_reason_for("function_call"), "tool_use");
        assert_eq!(stop_reason_for("weird"), "end_turn");
        assert_eq!(anthropic_error_type("provider_error", None), "api_error");
        assert_eq!(
            anthropic_error_type("provider_error", Some("provider_timeout")),
            "timeout_error"
        );
        assert_eq!(
            anthropic_error_type("rate_limit_error", None),
            "rate_limit_error"
        );
    }
}
