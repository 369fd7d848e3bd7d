//! `write_holding_gil`: one `write(2)` to a local file that keeps the GIL.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// Write ``data`` to the open descriptor ``fd`` with one ``write(2)`` (retried on ``EINTR``),
/// keeping the GIL; returns the bytes written, fewer on a short write. Errors raise ``OSError``
/// with the ``errno`` (so ``ENOSPC`` is ``OSError(28, …)``), as ``os.write`` does.
///
/// For small appends to a local file, which the page cache takes in microseconds:
/// ``os.write`` releases the GIL around them, and each release wakes a thread waiting for it
/// (a futex call on the writing thread) for less work than the wake-up costs.
///
/// >>> import os; r, w = os.pipe(); write_holding_gil(w, b"frame")
/// 5
#[pyfunction]
#[pyo3(signature = (fd, data, /))]
pub fn write_holding_gil(fd: i32, data: &[u8]) -> PyResult<usize> {
    if fd < 0 {
        return Err(PyOSError::new_err((9, "Bad file descriptor")));
    }
    // SAFETY: the caller owns `fd` and keeps it open for the call; wrapping it in
    // `ManuallyDrop` means this borrow never closes it.
    let mut file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    loop {
        match file.write(data) {
            Ok(written) => return Ok(written),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => {
                let errno = error.raw_os_error().unwrap_or(0);
                return Err(PyOSError::new_err((errno, error.to_string())));
            }
        }
    }
}
