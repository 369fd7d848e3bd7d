//! [`CoreError`] → Python exception: `IndexError` for row indices, `ValueError` otherwise.

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::PyErr;

use crate::CoreError;

impl From<CoreError> for PyErr {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::RowOutOfRange { .. } => PyIndexError::new_err(error.to_string()),
            _ => PyValueError::new_err(error.to_string()),
        }
    }
}
