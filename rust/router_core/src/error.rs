//! One error type for the whole core.
//!
//! Every variant carries enough context for a user to fix the input; the Python layer turns
//! them into `ValueError` (or `IndexError` for [`CoreError::RowOutOfRange`]).

use std::fmt;

/// Everything that can go wrong in the core. The core never panics on input; it returns this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// The request body is not valid JSON.
    InvalidJson {
        reason: String,
        line: usize,
        column: usize,
        byte_offset: usize,
    },
    /// The request body is valid JSON but not an object.
    NotAnObject { found: &'static str },
    /// A request field has a value of the wrong kind.
    InvalidField {
        field: &'static str,
        expected: &'static str,
    },
    /// A constructor or call argument is out of its allowed range.
    InvalidArgument { name: String, reason: String },
    /// A candidate-table column does not have the length or shape of the others.
    ColumnMismatch {
        column: &'static str,
        expected: String,
        found: String,
    },
    /// A row index beyond the table.
    RowOutOfRange { row: i64, rows: usize },
}

impl CoreError {
    pub(crate) fn argument(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson {
                reason,
                line,
                column,
                byte_offset,
            } => write!(
                f,
                "request body is not valid JSON: {reason} at line {line} column {column} \
                 (byte {byte_offset})"
            ),
            Self::NotAnObject { found } => {
                write!(
                    f,
                    "request body must be a JSON object, got {found} (at byte 0)"
                )
            }
            Self::InvalidField { field, expected } => {
                write!(f, "`{field}` must be {expected}")
            }
            Self::InvalidArgument { name, reason } => write!(f, "`{name}` {reason}"),
            Self::ColumnMismatch {
                column,
                expected,
                found,
            } => write!(
                f,
                "column `{column}` has {found}, expected {expected} \
                 (all columns need one entry per deployment row)"
            ),
            Self::RowOutOfRange { row, rows } => {
                write!(f, "row {row} is out of range for a table of {rows} rows")
            }
        }
    }
}

impl std::error::Error for CoreError {}
