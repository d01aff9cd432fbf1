//! Config Server client and background sync (to be filled in).
