//! The YAML library, behind one door.
//!
//! `serde_yaml` is deprecated and unmaintained (its last release is `0.9.34+deprecated`), but
//! it still reads and writes `config.yaml` correctly and no successor has settled yet. This is
//! the only module in the exporter's `src/` that names it: the rest of `config/` (and any
//! other module that needs YAML) goes through the names below, so replacing the library is a
//! change to this file alone, checked by the config tests.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A YAML value of any shape; unknown top-level keys of `config.yaml` are kept as these.
pub use serde_yaml::Value;

/// A YAML mapping (ordered as written).
pub use serde_yaml::Mapping;

/// Why YAML text could not be read or a value could not be written as YAML.
pub use serde_yaml::Error;

/// Reads YAML text into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_yaml::from_str(text)
}

/// Writes `value` as YAML text.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_yaml::to_string(value)
}

/// Turns any serialisable value (a `Config`, a JSON value) into a YAML [`Value`].
pub fn to_value<T: Serialize>(value: T) -> Result<Value, Error> {
    serde_yaml::to_value(value)
}

/// Reads a YAML [`Value`] into `T`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_yaml::from_value(value)
}
