//! The machine's hostname, as the bridge names itself (`shelly-bridge-<hostname>`).

use std::collections::HashMap;

/// Where the kernel publishes the hostname.
pub const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The machine's hostname: [`KERNEL_HOSTNAME`], else `HOSTNAME` from `env`, else `localhost`.
pub fn hostname(env: &HashMap<String, String>) -> String {
    choose_hostname(std::fs::read_to_string(KERNEL_HOSTNAME).ok(), env)
}

fn choose_hostname(kernel: Option<String>, env: &HashMap<String, String>) -> String {
    kernel
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| env.get("HOSTNAME").cloned())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_support::env;

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
}
