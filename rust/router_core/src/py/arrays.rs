//! Copying numpy arrays into Rust vectors with errors that name the argument and dtype.

use numpy::{Element, PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// "a 1-D float64 array, got a 2-D int32 array" style message.
fn wrong_array<T: Element>(obj: &Bound<'_, PyAny>, name: &str, ndim: usize) -> PyErr {
    let wanted = numpy::dtype::<T>(obj.py());
    let found = match obj.cast::<PyUntypedArray>() {
        Ok(array) => format!("a {}-D {} array", array.ndim(), array.dtype()),
        Err(_) => obj
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string()),
    };
    PyValueError::new_err(format!(
        "`{name}` must be a {ndim}-D numpy array of dtype {wanted}, got {found} \
         (use np.asarray(values, dtype=np.{wanted}))"
    ))
}

/// Copy a 1-D array of exactly dtype `T` (any strides).
pub(crate) fn column<T: Element + Copy>(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<T>> {
    let array = obj
        .cast::<PyArray1<T>>()
        .map_err(|_| wrong_array::<T>(obj, name, 1))?;
    let view = array
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("`{name}`: {e}")))?;
    Ok(view.as_array().iter().copied().collect())
}

/// Copy a 2-D array of exactly dtype `T` in row-major order; returns (values, rows, cols).
pub(crate) fn matrix<T: Element + Copy>(
    obj: &Bound<'_, PyAny>,
    name: &str,
) -> PyResult<(Vec<T>, usize, usize)> {
    let array = obj
        .cast::<PyArray2<T>>()
        .map_err(|_| wrong_array::<T>(obj, name, 2))?;
    let view = array
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("`{name}`: {e}")))?;
    let view = view.as_array();
    let (rows, cols) = view.dim();
    Ok((view.iter().copied().collect(), rows, cols))
}

/// An optional id mask (`None` allows every id).
pub(crate) fn mask(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Vec<bool>>> {
    obj.filter(|o| !o.is_none())
        .map(|o| column::<bool>(o, name))
        .transpose()
}
