//! tegrastats source (to be filled in).
