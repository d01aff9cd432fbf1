//! tegrastats: parsing its lines and running it as a source.
