//! Shelly collector: polls shelly-bridge (to be filled in).
