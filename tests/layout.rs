//! The layout's rules, read from the sources (README, "Architecture"): which of sim's
//! rooms may import which, and the control plane's core as a crate of its own.
//!
//! sim's modules import each other without a cycle. The cores below the lab import
//! nothing above themselves; the lab (world and router) imports no client; the clients
//! (`cli`, `observe`) import no session, scenario or report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the lab, the router of every host's parts and the world they live in, must never
/// import: the clients and everything above them.
const ABOVE_THE_LAB: &[&str] = &["cli", "observe", "session", "scenario", "report", "live"];

/// What the clients must never import.
const ABOVE_THE_CLIENTS: &[&str] = &["session", "scenario", "report"];

/// The lower rooms, and what each may import: nothing above itself.
const LOWER: &[(&str, &[&str])] = &[
    ("time", &[]),
    ("ids", &[]),
    ("ping", &["ids", "time"]),
    ("mesh", &["ids", "time"]),
    ("engine", &["time"]),
    ("trace", &["time"]),
    ("underlay", &["engine", "time"]),
    ("stack", &[]),
    ("netstack", &["time", "images", "fs"]),
    ("images", &[]),
    ("output", &[]),
    ("programs", &["fs", "images", "netstack", "output", "time"]),
    ("fs", &[]),
    ("sh", &["fs"]),
    ("membership", &["time"]),
    ("traffic", &["ids", "underlay"]),
    ("swarm", &["ids", "netstack", "time", "underlay"]),
    ("dockerref", &[]),
];

fn sim_src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/src")
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module -> the top-level modules its code names as `crate::NAME`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = sim_src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = graph[from].iter().map(String::as_str).collect();
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m) {
            if let Some(next) = graph.get(m) {
                stack.extend(next.iter().map(String::as_str));
            }
        }
    }
    false
}

#[test]
fn no_module_of_sim_is_in_an_import_cycle() {
    let graph = module_graph();
    assert!(graph.len() >= 10, "too few modules found: {graph:?}");
    let in_cycle: Vec<&str> = graph
        .keys()
        .map(String::as_str)
        .filter(|m| reaches(&graph, m, m))
        .collect();
    assert!(
        in_cycle.is_empty(),
        "in an import cycle: {in_cycle:?}\n{graph:#?}"
    );
}

#[test]
fn the_lab_imports_no_client_and_the_clients_no_session() {
    let graph = module_graph();
    let lab: Vec<_> = graph["lab"]
        .iter()
        .filter(|d| ABOVE_THE_LAB.contains(&d.as_str()))
        .collect();
    assert!(lab.is_empty(), "lab imports {lab:?}");
    for client in ["cli", "observe"] {
        let up: Vec<_> = graph[client]
            .iter()
            .filter(|d| ABOVE_THE_CLIENTS.contains(&d.as_str()))
            .collect();
        assert!(up.is_empty(), "{client} imports {up:?}");
    }
}

#[test]
fn the_lower_rooms_import_nothing_above_themselves() {
    let graph = module_graph();
    for (room, allowed) in LOWER {
        let deps = graph
            .get(*room)
            .unwrap_or_else(|| panic!("no module {room}"));
        let above: Vec<_> = deps
            .iter()
            .filter(|d| !allowed.contains(&d.as_str()))
            .collect();
        assert!(above.is_empty(), "{room} imports {above:?}");
    }
}

#[test]
fn the_control_plane_core_depends_on_nothing_of_swarmlabs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/control");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    for ours in ["swarmlab =", "swarmlab.", "vxlan", "gossip", "path ="] {
        assert!(!manifest.contains(ours), "sim/control depends on {ours}");
    }
    let mut files = Vec::new();
    rust_files(&dir.join("src"), &mut files);
    assert!(files.len() >= 3);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("swarmlab::"),
            "{} names swarmlab",
            f.display()
        );
    }
}

/// Every file of `sim/src` as its module path (`lab/mod.rs` is `["lab"]`), with its
/// text, comments removed.
fn module_files() -> BTreeMap<Vec<String>, String> {
    let root = sim_src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .collect();
        let dir_mod = matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        );
        if dir_mod {
            parts.pop();
        }
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        out.insert(parts, text);
    }
    out
}

/// The paths that follow `prefix::` in `text` (`crate::a::b` gives `["a", "b"]`).
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        let path: Vec<String> = rest
            .split("::")
            .map(|seg| {
                seg.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|seg| !seg.is_empty())
            .collect();
        out.push(path);
    }
    out
}

/// The same rule as `../shared/tools/cycles.py` (the hook's check), file by file: no
/// file of sim's imports, through `crate::` or `super::` paths, a file that imports it
/// back, directly or not.
#[test]
fn no_file_of_sim_is_in_an_import_cycle() {
    let files = module_files();
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|k| path[..k].to_vec())
            .find(|p| files.contains_key(p))
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &files {
        let me = m.join("/");
        let deps = graph.entry(me.clone()).or_default();
        let mut targets: Vec<Vec<String>> = paths_after(text, "crate::");
        for p in paths_after(text, "super::") {
            // super of a/b.rs and of a/b/mod.rs (both `["a", "b"]` here) is a.
            let mut base = m[..m.len().saturating_sub(1)].to_vec();
            base.extend(p);
            targets.push(base);
        }
        for t in targets {
            if let Some(t) = resolve(&t).filter(|t| !t.is_empty() && t != m) {
                deps.insert(t.join("/"));
            }
        }
    }
    let in_cycle: Vec<&str> = graph
        .keys()
        .map(String::as_str)
        .filter(|m| reaches(&graph, m, m))
        .collect();
    assert!(graph.len() >= 30, "too few files found: {}", graph.len());
    assert!(in_cycle.is_empty(), "in an import cycle: {in_cycle:?}");
}

/// The files that may let virtual time pass: the engine's queue, the world's own stepping
/// (`Lab::run_until`, `step_until`, and `cx::drive` for a command), and the session.
/// The live driver runs on the wall clock through tokio, outside the simulator.
const CLOCK_OWNERS: &[&str] = &[
    "engine.rs",
    "lab/mod.rs",
    "lab/cx.rs",
    "session.rs",
    "live.rs",
    "live_gossip.rs",
];

/// What advances virtual time when called.
const CLOCK_CALLS: &[&str] = &[
    ".run_until(",
    ".run_until_or(",
    ".step_until(",
    ".advance_to(",
    ".pop_until(",
    "drive(",
    "cx::step(",
];

#[test]
fn only_the_world_and_the_session_advance_the_clock() {
    let root = sim_src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if CLOCK_OWNERS.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // A file's unit tests (at its end) drive the world as a test may.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            // The scenario runner lets time pass through its session (`self.s`).
            let line = line.replace("self.s.sleep_until(", "");
            for call in CLOCK_CALLS {
                if line.contains(call) {
                    found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the clock advanced outside the world and the session:\n{}",
        found.join("\n")
    );
}
