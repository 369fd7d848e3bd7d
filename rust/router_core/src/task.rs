//! Prompt-task classification and difficulty from cheap lexical features.
//!
//! # What is looked at
//!
//! Only bounded windows of text are scanned, so the cost does not grow with the prompt:
//! the last [`USER_WINDOW`] bytes of the *last user message* (where the actual ask usually
//! is, after any pasted material) and the first [`SYSTEM_WINDOW`] bytes of the *first
//! system/developer message*. Besides the windows, the classifier uses three facts the
//! analysis pass already has: whether any image part is present, whether `response_format`
//! asks for JSON, and the whole prompt's estimated token count.
//!
//! Matching is ASCII case-insensitive, over bytes (windows may cut UTF-8 sequences; that is
//! harmless), with one Aho–Corasick automaton built once. A pattern that starts with a letter
//! or digit only counts at a word start (so `bug` does not count inside `debug`); patterns
//! marked *whole* must also end at a word end (`must` but not `mustard`).
//!
//! # Task rules
//!
//! 1. Any image part → `vision`, whatever the text says.
//! 2. Otherwise every other class gets a score: the sum of the weights of its signals found
//!    in the windows (see [`SIGNALS`]), plus
//!    * `math`: one point per digit–operator–digit expression (`12*7`, `3 / 4`, `2^10`; `-` only when spaced, so dates and ranges don't count), at most 6;
//!    * `extraction`: [`JSON_FORMAT_WEIGHT`] when `response_format` is `json_object` or
//!      `json_schema`;
//!    * `summarization`: [`LONG_PROMPT_WEIGHT`] when the prompt is estimated above
//!      [`LONG_PROMPT_TOKENS`] tokens (long context).
//! 3. The highest score wins if it reaches [`MIN_SCORE`]; ties go to the earlier class in
//!    the order code, math, extraction, summarization, creative. Otherwise → `chat`.
//!
//! A single weak (weight-1) word, e.g. `class` or `select` in prose, is not enough to leave
//! `chat`; an explicit ask (`summarize`, `regex`, `prove`, `write a poem`) or a code fence is.
//!
//! # Difficulty
//!
//! A weighted sum of four saturating terms, each in [0, 1), clamped to [0, 1]:
//!
//! | term | weight | value |
//! |---|---|---|
//! | length | 0.30 | `ln(1 + tokens/50) / ln(1 + 100_000/50)`, capped at 1 |
//! | reasoning markers | 0.35 | `1 − 0.6^n` (`step by step`, `prove`, `optimize`, `edge case`, `complexity`, `why`, …) |
//! | requirements | 0.20 | `1 − 0.75^n` (bullet/numbered lines, `must`, `should`, `ensure`, `at least`, …) |
//! | code/math density | 0.15 | `1 − 0.85^s`, `s` = code score + math score |
//!
//! Every term is non-decreasing in its count and every count only grows when text is added
//! (at a word boundary), so adding a reasoning marker never lowers difficulty as long as the
//! edited message fits its window; past the window the slice that slides out is not
//! counted any more.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Task names in the column order of the candidate table's quality matrix.
pub const TASKS: [&str; 7] = [
    "chat",
    "code",
    "math",
    "extraction",
    "summarization",
    "creative",
    "vision",
];
/// Index of `chat` in [`TASKS`].
pub const TASK_CHAT: usize = 0;
/// Index of `code` in [`TASKS`].
pub const TASK_CODE: usize = 1;
/// Index of `math` in [`TASKS`].
pub const TASK_MATH: usize = 2;
/// Index of `extraction` in [`TASKS`].
pub const TASK_EXTRACTION: usize = 3;
/// Index of `summarization` in [`TASKS`].
pub const TASK_SUMMARIZATION: usize = 4;
/// Index of `creative` in [`TASKS`].
pub const TASK_CREATIVE: usize = 5;
/// Index of `vision` in [`TASKS`].
pub const TASK_VISION: usize = 6;

/// Bytes scanned at the end of the last user message.
pub const USER_WINDOW: usize = 8 * 1024;
/// Bytes scanned at the start of the first system (or developer) message.
pub const SYSTEM_WINDOW: usize = 4 * 1024;
/// Score a class needs to beat `chat`.
pub const MIN_SCORE: u32 = 2;
/// Estimated prompt tokens above which the prompt counts as long context.
pub const LONG_PROMPT_TOKENS: u64 = 6_000;
/// Summarization points for a long prompt.
pub const LONG_PROMPT_WEIGHT: u32 = 3;
/// Extraction points for `response_format` `json_object` / `json_schema`.
pub const JSON_FORMAT_WEIGHT: u32 = 3;
/// Cap on math points from digit–operator–digit expressions.
const MAX_EXPRESSION_POINTS: u32 = 6;

/// What a matched pattern is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Adds `weight` to the score of task `TASKS[task]`.
    Task { task: usize, weight: u32 },
    /// A reasoning marker (difficulty only).
    Reasoning,
    /// A requirement/constraint marker (difficulty only).
    Requirement,
    /// Both task evidence and a reasoning marker (e.g. `prove`).
    TaskAndReasoning { task: usize, weight: u32 },
}

/// One lexical pattern: matched ASCII case-insensitively at a word start; `whole` patterns
/// must also end at a word end.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    pub text: &'static str,
    pub whole: bool,
    pub signal: Signal,
}

const fn task(text: &'static str, task: usize, weight: u32) -> Pattern {
    Pattern {
        text,
        whole: false,
        signal: Signal::Task { task, weight },
    }
}

const fn word(text: &'static str, task: usize, weight: u32) -> Pattern {
    Pattern {
        text,
        whole: true,
        signal: Signal::Task { task, weight },
    }
}

const fn reasoning(text: &'static str) -> Pattern {
    Pattern {
        text,
        whole: false,
        signal: Signal::Reasoning,
    }
}

const fn requirement(text: &'static str, whole: bool) -> Pattern {
    Pattern {
        text,
        whole,
        signal: Signal::Requirement,
    }
}

const fn task_reasoning(text: &'static str, task: usize, weight: u32) -> Pattern {
    Pattern {
        text,
        whole: false,
        signal: Signal::TaskAndReasoning { task, weight },
    }
}

const CODE: usize = TASK_CODE;
const MATH: usize = TASK_MATH;
const EXTRACT: usize = TASK_EXTRACTION;
const SUMMARY: usize = TASK_SUMMARIZATION;
const CREATIVE: usize = TASK_CREATIVE;

/// Every pattern the classifier counts. Weight 3: unambiguous syntax (code fences, LaTeX);
/// weight 2: an explicit ask or a term rarely seen outside the task; weight 1: topical
/// words that are also common in prose.
pub const SIGNALS: &[Pattern] = &[
    // Code: syntax.
    task("```", CODE, 3),
    task("#include", CODE, 3),
    task("def ", CODE, 2),
    task("fn ", CODE, 2),
    task("function ", CODE, 1),
    task("function(", CODE, 2),
    task("class ", CODE, 1),
    task("import ", CODE, 1),
    task("select ", CODE, 1),
    task("select *", CODE, 2),
    task("return ", CODE, 1),
    task("console.log", CODE, 2),
    task("println", CODE, 2),
    task("=> ", CODE, 1),
    task("();", CODE, 2),
    task("public static", CODE, 2),
    // Code: stack traces.
    task("traceback (most recent call last)", CODE, 3),
    task("stack trace", CODE, 2),
    task("stacktrace", CODE, 2),
    task("exception in thread", CODE, 3),
    task("panicked at", CODE, 3),
    task("segmentation fault", CODE, 2),
    task("\n    at ", CODE, 1),
    task("error[e", CODE, 2),
    // Code: words.
    word("bug", CODE, 2),
    word("bugs", CODE, 2),
    task("debug", CODE, 2),
    task("compile", CODE, 2),
    task("refactor", CODE, 2),
    task("regex", CODE, 2),
    task("regular expression", CODE, 2),
    word("code", CODE, 1),
    task("coding", CODE, 1),
    word("python", CODE, 1),
    task("javascript", CODE, 1),
    task("typescript", CODE, 1),
    word("rust", CODE, 1),
    word("sql", CODE, 1),
    word("api", CODE, 1),
    task("unit test", CODE, 2),
    task("implement", CODE, 1),
    // Math.
    task("\\frac", MATH, 3),
    task("$$", MATH, 3),
    task("\\int", MATH, 3),
    task("\\sum", MATH, 3),
    task("\\sqrt", MATH, 3),
    task("\\begin{equation", MATH, 3),
    task_reasoning("prove", MATH, 2),
    task_reasoning("proof", MATH, 2),
    task("solve", MATH, 2),
    task("integral", MATH, 2),
    task("equation", MATH, 2),
    task("probability", MATH, 2),
    task("derivative", MATH, 2),
    task("theorem", MATH, 2),
    task("lemma", MATH, 2),
    task("polynomial", MATH, 2),
    task("calculate", MATH, 1),
    task("algebra", MATH, 1),
    task("geometry", MATH, 1),
    task("arithmetic", MATH, 1),
    word("math", MATH, 1),
    task("mathematic", MATH, 1),
    task("matrix", MATH, 1),
    task("expected value", MATH, 2),
    task("prime number", MATH, 1),
    // Extraction / classification.
    task("extract", EXTRACT, 2),
    task("classify", EXTRACT, 2),
    task("classification", EXTRACT, 2),
    task("categorize", EXTRACT, 2),
    task("categorise", EXTRACT, 2),
    task("label", EXTRACT, 2),
    task("parse", EXTRACT, 2),
    word("json", EXTRACT, 2),
    task("return json", EXTRACT, 1),
    task("list all", EXTRACT, 2),
    task("named entit", EXTRACT, 2),
    task("sentiment", EXTRACT, 2),
    task("structured", EXTRACT, 1),
    word("csv", EXTRACT, 1),
    word("fields", EXTRACT, 1),
    // Summarization.
    task("summar", SUMMARY, 2),
    task("tl;dr", SUMMARY, 3),
    word("tldr", SUMMARY, 3),
    task("key points", SUMMARY, 2),
    task("main points", SUMMARY, 2),
    task("key takeaways", SUMMARY, 2),
    task("condense", SUMMARY, 2),
    task("recap", SUMMARY, 1),
    word("gist", SUMMARY, 1),
    task("in a nutshell", SUMMARY, 1),
    // Creative.
    task("write a story", CREATIVE, 3),
    task("write a poem", CREATIVE, 3),
    task("write a song", CREATIVE, 3),
    task("short story", CREATIVE, 2),
    word("story", CREATIVE, 1),
    task("poem", CREATIVE, 2),
    task("poetry", CREATIVE, 2),
    word("song", CREATIVE, 1),
    task("lyrics", CREATIVE, 2),
    task("haiku", CREATIVE, 2),
    task("limerick", CREATIVE, 2),
    task("sonnet", CREATIVE, 2),
    task("creative", CREATIVE, 2),
    task("imagine", CREATIVE, 2),
    task("fiction", CREATIVE, 2),
    task("screenplay", CREATIVE, 2),
    task("once upon a time", CREATIVE, 2),
    // Reasoning markers (difficulty).
    reasoning("step by step"),
    reasoning("step-by-step"),
    reasoning("optimize"),
    reasoning("optimise"),
    reasoning("optimal"),
    reasoning("edge case"),
    reasoning("corner case"),
    reasoning("complexity"),
    Pattern {
        text: "why",
        whole: true,
        signal: Signal::Reasoning,
    },
    reasoning("explain"),
    reasoning("reasoning"),
    reasoning("derive"),
    reasoning("rigorous"),
    reasoning("trade-off"),
    reasoning("tradeoff"),
    reasoning("analyze"),
    reasoning("analyse"),
    reasoning("think carefully"),
    reasoning("justify"),
    reasoning("algorithm"),
    // Requirement markers (difficulty).
    requirement("must", true),
    requirement("should", true),
    requirement("ensure", false),
    requirement("require", false),
    requirement("at least", false),
    requirement("at most", false),
    requirement("do not", false),
    requirement("don't", false),
    requirement("exactly", false),
    requirement("constraint", false),
];

static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(SIGNALS.iter().map(|p| p.text))
        .expect("the signal patterns are a valid automaton")
});

/// The result of classification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    /// Index into [`TASKS`].
    pub task: usize,
    /// 0 (trivial) ..= 1 (hard).
    pub difficulty: f64,
}

/// Signal counts accumulated over the scanned windows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskSignals {
    /// Per-task scores, indexed like [`TASKS`] (`chat` and `vision` stay 0).
    pub scores: [u32; TASKS.len()],
    /// Digit–operator–digit expressions seen (uncapped).
    pub expressions: u32,
    /// Reasoning markers seen.
    pub reasoning: u32,
    /// Requirement markers and bullet/numbered lines seen.
    pub requirements: u32,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl TaskSignals {
    /// Scan the last [`USER_WINDOW`] bytes of `text` (a part of the last user message).
    /// Returns how many window bytes are left for further (earlier) parts.
    pub fn scan_tail(&mut self, text: &str, budget: usize) -> usize {
        let bytes = text.as_bytes();
        let take = bytes.len().min(budget);
        self.scan(&bytes[bytes.len() - take..]);
        budget - take
    }

    /// Scan the first `budget` bytes of `text` (a part of the system message). Returns the
    /// budget left.
    pub fn scan_head(&mut self, text: &str, budget: usize) -> usize {
        let bytes = text.as_bytes();
        let take = bytes.len().min(budget);
        self.scan(&bytes[..take]);
        budget - take
    }

    /// Count every signal in one window.
    pub fn scan(&mut self, window: &[u8]) {
        for m in AUTOMATON.find_overlapping_iter(window) {
            let pattern = &SIGNALS[m.pattern().as_usize()];
            let first = pattern.text.as_bytes()[0];
            if is_word_byte(first) && m.start() > 0 && is_word_byte(window[m.start() - 1]) {
                continue;
            }
            if pattern.whole && window.get(m.end()).copied().is_some_and(is_word_byte) {
                continue;
            }
            match pattern.signal {
                Signal::Task { task, weight } => self.scores[task] += weight,
                Signal::Reasoning => self.reasoning += 1,
                Signal::Requirement => self.requirements += 1,
                Signal::TaskAndReasoning { task, weight } => {
                    self.scores[task] += weight;
                    self.reasoning += 1;
                }
            }
        }
        self.expressions += count_expressions(window);
        self.requirements += count_list_lines(window);
    }

    /// Decide task and difficulty.
    pub fn classify(
        &self,
        has_image: bool,
        json_format: bool,
        prompt_tokens: u64,
    ) -> Classification {
        let mut scores = self.scores;
        scores[TASK_MATH] += self.expressions.min(MAX_EXPRESSION_POINTS);
        if json_format {
            scores[TASK_EXTRACTION] += JSON_FORMAT_WEIGHT;
        }
        if prompt_tokens > LONG_PROMPT_TOKENS {
            scores[TASK_SUMMARIZATION] += LONG_PROMPT_WEIGHT;
        }
        let task = if has_image {
            TASK_VISION
        } else {
            // Strictly greater keeps the earlier class on ties.
            let mut best = TASK_CHAT;
            let mut best_score = MIN_SCORE - 1;
            for t in [
                TASK_CODE,
                TASK_MATH,
                TASK_EXTRACTION,
                TASK_SUMMARIZATION,
                TASK_CREATIVE,
            ] {
                if scores[t] > best_score {
                    best = t;
                    best_score = scores[t];
                }
            }
            best
        };
        Classification {
            task,
            difficulty: self.difficulty(&scores, prompt_tokens),
        }
    }

    fn difficulty(&self, scores: &[u32; TASKS.len()], prompt_tokens: u64) -> f64 {
        let saturate = |base: f64, n: u32| 1.0 - base.powi(n.min(1_000) as i32);
        let length =
            ((prompt_tokens as f64 / 50.0).ln_1p() / (100_000.0f64 / 50.0).ln_1p()).min(1.0);
        let density = saturate(0.85, scores[TASK_CODE].saturating_add(scores[TASK_MATH]));
        let value = 0.30 * length
            + 0.35 * saturate(0.6, self.reasoning)
            + 0.20 * saturate(0.75, self.requirements)
            + 0.15 * density;
        value.clamp(0.0, 1.0)
    }
}

/// Operators that join two numbers into an expression; `-` only when spaced.
fn is_operator(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'*' | b'/' | b'=' | b'^' | b'<' | b'>' | b'%' | b'-'
    )
}

/// Count `number [space] op [space] number` occurrences (`-` needs spaces on both sides, so
/// dates, ranges and phone numbers don't count).
fn count_expressions(window: &[u8]) -> u32 {
    let mut count = 0;
    let mut i = 0;
    while i < window.len() {
        if !window[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // End of this run of digits.
        while i < window.len() && window[i].is_ascii_digit() {
            i += 1;
        }
        let mut j = i;
        let spaced_before = j < window.len() && window[j] == b' ';
        if spaced_before {
            j += 1;
        }
        let Some(&op) = window.get(j) else { break };
        if !is_operator(op) {
            continue;
        }
        j += 1;
        let spaced_after = window.get(j) == Some(&b' ');
        if spaced_after {
            j += 1;
        }
        if op == b'-' && !(spaced_before && spaced_after) {
            continue;
        }
        if window.get(j).is_some_and(u8::is_ascii_digit) {
            count += 1;
        }
        // The right-hand number starts the next expression check.
        i = j;
    }
    count
}

/// Lines that start (after indentation) with `- `, `* `, `• ` or `N. ` / `N) `.
fn count_list_lines(window: &[u8]) -> u32 {
    let mut count = 0;
    for start in std::iter::once(0).chain(memchr::memchr_iter(b'\n', window).map(|i| i + 1)) {
        let line = &window[start..];
        let indent = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let line = &line[indent..];
        let bullet =
            line.starts_with(b"- ") || line.starts_with(b"* ") || line.starts_with("• ".as_bytes());
        let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
        let numbered = (1..=3).contains(&digits)
            && matches!(line.get(digits..digits + 2), Some(b". " | b") "));
        if bullet || numbered {
            count += 1;
        }
    }
    count
}

/// Classify a lone prompt as if it were the only (user) message of a request with no images
/// and no JSON format; `prompt_tokens` comes from [`crate::estimate_prompt_tokens`] rules.
pub fn classify_text(text: &str) -> Classification {
    let mut signals = TaskSignals::default();
    signals.scan_tail(text, USER_WINDOW);
    let tokens = (text.len() as u64).div_ceil(3) + 7;
    signals.classify(false, false, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_of(text: &str) -> &'static str {
        TASKS[classify_text(text).task]
    }

    #[test]
    fn chat() {
        assert_eq!(task_of("Hi there, how are you today?"), "chat");
        assert_eq!(task_of("What's a good name for a cat?"), "chat");
    }

    #[test]
    fn empty_is_chat_and_easy() {
        let c = classify_text("");
        assert_eq!(TASKS[c.task], "chat");
        assert!(c.difficulty < 0.05, "{}", c.difficulty);
        assert!(
            TaskSignals::default()
                .classify(false, false, 0)
                .difficulty
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn code() {
        assert_eq!(
            task_of("Why does this not compile?\n```rust\nfn main() {}\n```"),
            "code"
        );
        assert_eq!(task_of("def f(x):\n    return x"), "code");
        assert_eq!(
            task_of("Traceback (most recent call last):\n  File \"a.py\", line 1"),
            "code"
        );
        assert_eq!(task_of("Write a regex for emails"), "code");
        assert_eq!(task_of("#include <stdio.h>"), "code");
    }

    #[test]
    fn math() {
        assert_eq!(task_of("Solve for x: 3x + 5 = 20"), "math");
        assert_eq!(
            task_of("Prove that the square root of 2 is irrational."),
            "math"
        );
        assert_eq!(task_of("Compute $$\\frac{1}{2} + \\frac{1}{3}$$"), "math");
        assert_eq!(task_of("What is 12*7+3?"), "math");
    }

    #[test]
    fn extraction() {
        assert_eq!(
            task_of("Extract the names and dates from this email."),
            "extraction"
        );
        assert_eq!(
            task_of("Classify the sentiment of: I loved it"),
            "extraction"
        );
        assert_eq!(
            TASKS[TaskSignals::default().classify(false, true, 10).task],
            "extraction"
        );
    }

    #[test]
    fn summarization() {
        assert_eq!(
            task_of("Please summarize the following article."),
            "summarization"
        );
        assert_eq!(task_of("tl;dr of this thread?"), "summarization");
        // Long context alone.
        assert_eq!(
            TASKS[TaskSignals::default()
                .classify(false, false, LONG_PROMPT_TOKENS + 1)
                .task],
            "summarization"
        );
    }

    #[test]
    fn creative() {
        assert_eq!(task_of("Write a poem about the sea"), "creative");
        assert_eq!(
            task_of("Imagine a city under the ocean and write a short story."),
            "creative"
        );
    }

    #[test]
    fn vision_overrides_text() {
        let mut s = TaskSignals::default();
        s.scan(b"```python\ndef f(): pass\n```");
        assert_eq!(TASKS[s.classify(true, false, 10).task], "vision");
    }

    #[test]
    fn ties_follow_the_order() {
        // "regex" (code 2) and "solve" (math 2): code first.
        assert_eq!(task_of("regex solve"), "code");
        // "solve" (math 2) and "extract" (extraction 2): math first.
        assert_eq!(task_of("solve extract"), "math");
        // extraction vs summarization, summarization vs creative.
        assert_eq!(task_of("extract summarize"), "extraction");
        assert_eq!(task_of("summarize poem"), "summarization");
    }

    #[test]
    fn weak_words_stay_chat() {
        assert_eq!(task_of("Which class should I take next semester?"), "chat");
        assert_eq!(task_of("the label"), "extraction");
    }

    #[test]
    fn word_boundaries() {
        let mut s = TaskSignals::default();
        s.scan(b"mustard debugger");
        assert_eq!(s.requirements, 0);
        assert_eq!(s.scores[TASK_CODE], 2); // "debug" only, not "bug"
    }

    #[test]
    fn expressions() {
        assert_eq!(count_expressions(b"12*7+3"), 2);
        assert_eq!(count_expressions(b"2024-01-15"), 0);
        assert_eq!(count_expressions(b"10 - 4 = 6"), 2);
        assert_eq!(count_expressions(b"3x4 and 0x1F"), 0);
        assert_eq!(count_expressions(b"123"), 0);
        assert_eq!(count_expressions(b"1+"), 0);
    }

    #[test]
    fn list_lines() {
        assert_eq!(count_list_lines(b"- a\n  * b\n1. c\n12) d\nplain\n-x"), 4);
    }

    #[test]
    fn difficulty_grows_with_reasoning_and_requirements() {
        let easy = classify_text("What is the capital of France?").difficulty;
        let hard = classify_text(
            "Optimize this algorithm step by step; explain the complexity and edge cases.\n\
             - it must run in O(n)\n- it must handle empty input",
        )
        .difficulty;
        assert!(easy < 0.2, "{easy}");
        assert!(hard > easy + 0.3, "{easy} {hard}");
        assert!(hard <= 1.0);
    }

    #[test]
    fn windows_bound_the_scan() {
        let mut s = TaskSignals::default();
        let long = format!("summarize {}", "a ".repeat(USER_WINDOW));
        assert_eq!(s.scan_tail(&long, USER_WINDOW), 0);
        assert_eq!(s.scores[TASK_SUMMARIZATION], 0);
        assert_eq!(s.scan_head(&long, 5), 0);
        assert_eq!(s.scan_head("ab", 5), 3);
    }
}
