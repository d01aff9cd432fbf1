//! Environment variables read through a small trait, so tests pass a map instead of changing
//! the process environment; and the machine's hostname.

use std::collections::{BTreeMap, HashMap};

/// Where environment variables come from.
pub trait Env {
    /// The variable's value, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// Where the kernel publishes the hostname.
pub const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The machine's hostname: [`KERNEL_HOSTNAME`], else `$HOSTNAME`, else `localhost`.
pub fn hostname(env: &dyn Env) -> String {
    choose_hostname(std::fs::read_to_string(KERNEL_HOSTNAME).ok(), env)
}

fn choose_hostname(kernel: Option<String>, env: &dyn Env) -> String {
    kernel
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| env.get("HOSTNAME"))
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kernel_then_variable_then_localhost() {
        let with_var = env(&[("HOSTNAME", "from-env")]);
        assert_eq!(
            choose_hostname(Some("jetson-01\n".into()), &with_var),
            "jetson-01"
        );
        assert_eq!(choose_hostname(Some(" \n".into()), &with_var), "from-env");
        assert_eq!(choose_hostname(None, &with_var), "from-env");
        assert_eq!(choose_hostname(None, &env(&[])), "localhost");
    }

    #[test]
    fn this_machine_has_a_hostname() {
        assert!(!hostname(&env(&[])).is_empty());
    }

    #[test]
    fn maps_and_the_process_answer_alike() {
        let tree: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(Env::get(&tree, "A").as_deref(), Some("1"));
        assert_eq!(Env::get(&env(&[("A", "2")]), "A").as_deref(), Some("2"));
        assert_eq!(ProcessEnv.get("EDGE_METRICS_COMMON_SURELY_UNSET"), None);
    }
}
