//! tegrastats line (to be filled in).
