//! tegrastats parse (to be filled in).
