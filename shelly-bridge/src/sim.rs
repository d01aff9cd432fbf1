//! Plug simulator (placeholder).
/// Simulator error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SimError {
    /// usage
    pub usage: bool,
    /// msg
    pub message: String,
}
/// Entry.
pub fn main(_a: &[String]) -> Result<(), SimError> {
    Err(SimError {
        usage: true,
        message: "the simulator is not available in this build".into(),
    })
}
