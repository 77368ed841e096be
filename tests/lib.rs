//! Shared helpers for the end-to-end tests.

use std::path::PathBuf;
use std::process::Command;

/// Whether CI asked every test to really run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Decide whether a test that needs something from the machine can run. When it cannot,
/// say why on stderr and return false, except under `CI=true`, where a skip is a failure.
pub fn can_run(what: &str, available: bool, why_not: &str) -> bool {
    if available {
        return true;
    }
    if in_ci() {
        panic!("{what} must run under CI=true, but {why_not}");
    }
    eprintln!("SKIPPED {what}: {why_not}");
    false
}

/// Whether `program` runs (`program --version` or `-V` exits 0).
pub fn have(program: &str) -> bool {
    ["--version", "-V"].iter().any(|flag| {
        Command::new(program)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Whether we run as root (needed for network namespaces).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh directory under the system temp dir, emptied if it existed.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!("swarmlab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("create scratch dir");
    base
}

/// The default scenario, parsed.
pub fn default_scenario() -> swarmlab::scenario::Scenario {
    swarmlab::scenario::parse(
        "scenarios/default.lab",
        swarmlab::scenario::DEFAULT_SCENARIO,
    )
    .expect("default scenario parses")
}

/// The overlay lesson (`scenarios/overlay.lab`: two hosts, ping across VXLAN), parsed.
pub fn overlay_scenario() -> swarmlab::scenario::Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/overlay.lab");
    let text = std::fs::read_to_string(path).expect("scenarios/overlay.lab");
    swarmlab::scenario::parse("scenarios/overlay.lab", &text).expect("overlay scenario parses")
}
