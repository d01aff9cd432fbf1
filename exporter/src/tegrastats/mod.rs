//! tegrastats: parsing its lines and running it as a source.

pub mod line;
pub mod parse;
pub mod source;
