//! Stamps the binary with its version and git revision (`EDGE_METRICS_VERSION`,
//! `EDGE_METRICS_REVISION`); the logic is shared by the three daemons.
include!("../scripts/build-version.rs");
