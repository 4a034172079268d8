//! Serving one connection over a byte stream (a serial device).

/// Placeholder.
pub fn serve_stream() {}
