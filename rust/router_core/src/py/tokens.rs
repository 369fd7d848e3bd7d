//! Token counting: exact `o200k_base` / `cl100k_base`, chat framing, family estimates.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{Encoding, Family};

/// Texts longer than this are counted with the GIL released.
const DETACH_BYTES: usize = 16 * 1024;

fn encoding(name: &str) -> PyResult<Encoding> {
    Encoding::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown encoding {name:?}; expected one of {:?}",
            Encoding::NAMES
        ))
    })
}

fn family(name: &str) -> PyResult<Family> {
    Family::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown family {name:?}; expected one of {:?}",
            Family::NAMES
        ))
    })
}

/// Exact token count of ``text``, equal to tiktoken's
/// ``len(enc.encode(text, disallowed_special=()))``.
///
/// >>> count_tokens("hello world", encoding="o200k_base")
/// 2
#[pyfunction]
#[pyo3(signature = (text, /, *, encoding))]
pub fn count_tokens(py: Python<'_>, text: &str, encoding: &str) -> PyResult<usize> {
    let encoding = self::encoding(encoding)?;
    Ok(if text.len() > DETACH_BYTES {
        py.detach(|| encoding.count(text))
    } else {
        encoding.count(text)
    })
}

/// Tokens OpenAI bills as ``prompt_tokens`` for ``messages_json`` (a JSON array of chat
/// messages) and ``tools_json`` (a JSON array of tool definitions): 3 per message, +1 per
/// ``name``, +3 reply priming, images by the tile formula, tools by the function formula.
///
/// >>> count_chat(b'[{"role": "user", "content": "hello world"}]', encoding="o200k_base")
/// 9
#[pyfunction]
#[pyo3(signature = (messages_json, /, *, encoding, tools_json = None))]
pub fn count_chat(
    py: Python<'_>,
    messages_json: &[u8],
    encoding: &str,
    tools_json: Option<&[u8]>,
) -> PyResult<u64> {
    let encoding = self::encoding(encoding)?;
    let run = || crate::count_chat(messages_json, tools_json, encoding);
    Ok(if messages_json.len() > DETACH_BYTES {
        py.detach(run)
    } else {
        run()
    }?)
}

/// Upper bound of the tokens of ``text`` for a model ``family`` (see ``FAMILIES``), from
/// byte classes, without a vocabulary.
///
/// >>> estimate_tokens("hello world", family="claude") >= 2
/// True
#[pyfunction]
#[pyo3(signature = (text, /, *, family))]
pub fn estimate_tokens(text: &str, family: &str) -> PyResult<u64> {
    Ok(crate::estimate_tokens(text, self::family(family)?))
}

/// Prompt tokens of a raw chat-completions body for a model ``family``: exact for OpenAI
/// families, exact ``o200k_base`` times the family's ratio otherwise, the estimator's bound
/// for bodies over 256 KiB. Returns ``(tokens, exact)``.
///
/// >>> count_body_tokens(b'{"messages": [{"role": "user", "content": "hi"}]}', family="gpt-4o")
/// (8, True)
#[pyfunction]
#[pyo3(signature = (body, /, *, family))]
pub fn count_body_tokens(py: Python<'_>, body: &[u8], family: &str) -> PyResult<(u64, bool)> {
    let family = self::family(family)?;
    Ok(if body.len() > DETACH_BYTES {
        py.detach(|| crate::count_body_tokens(body, family))
    } else {
        crate::count_body_tokens(body, family)
    }?)
}

/// Assumed tokens of a model ``family`` per ``o200k_base`` token (see ``FAMILIES``; matched
/// case-insensitively): 1.0 for OpenAI families, for an unknown family and for ``None``.
/// The catalog fills ``CandidateTable``'s ``token_ratio`` column with it.
///
/// >>> token_ratio("claude"), token_ratio("gpt-4o"), token_ratio(None)
/// (1.3, 1.0, 1.0)
#[pyfunction]
#[pyo3(signature = (family))]
pub fn token_ratio(family: Option<&str>) -> f64 {
    family
        .and_then(|name| Family::from_name(&name.trim().to_ascii_lowercase()))
        .map_or(1.0, Family::ratio)
}

/// The gzipped ``.tiktoken`` vocabulary compiled into the core (for offline reference checks).
#[pyfunction]
#[pyo3(signature = (encoding, /))]
pub fn vocabulary_gz(encoding: &str) -> PyResult<&'static [u8]> {
    Ok(self::encoding(encoding)?.vocabulary_gz())
}
