//! `docker info` and `docker version`: the client's and the engine's summary, with the Swarm section as the
//! node itself knows it (its own manager's store, or its agent's managers), in the
//! layout of the Docker CLI 28 against a 20.10 engine. What swarmlab does not simulate
//! about a host (kernel, memory, drivers) is said as swarmlab's.

use crate::lab::Lab;
use crate::output::CommandOutput;
use crate::underlay::HostId;
use std::fmt::Write;

/// The Docker CLI version swarmlab's texts follow.
const CLI_VERSION: &str = "28.2.2";

/// The engine's fields as `--format` sees them (the parts swarmlab knows).
fn fields(lab: &Lab, host: HostId) -> serde_json::Value {
    let containers: Vec<_> = lab.containers.iter().filter(|c| c.host == host).collect();
    let running = containers.iter().filter(|c| c.running).count();
    let mut images: Vec<&str> = containers.iter().map(|c| c.image.as_str()).collect();
    images.sort_unstable();
    images.dedup();
    let s = lab.swarm_of(host);
    let addr = lab.underlay.nic(host).ip;
    let store = s.manager.as_ref().map(|m| &m.store);
    let state = if s.node_id.is_some() {
        "active"
    } else {
        "inactive"
    };
    let managers: Vec<String> = match (store, s.agent.as_ref()) {
        (Some(st), _) => st
            .nodes
            .values()
            .filter(|n| n.raft_id.is_some())
            .map(|n| format!("{}:2377", n.addr))
            .collect(),
        (None, Some(a)) => a.managers.iter().map(|m| format!("{m}:2377")).collect(),
        _ => Vec::new(),
    };
    serde_json::json!({
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images.len(),
        "ServerVersion": crate::swarm::ENGINE_VERSION,
        "Name": lab.host_name(host),
        "Swarm": {
            "NodeID": s.node_id.clone().unwrap_or_default(),
            "NodeAddr": if s.node_id.is_some() { addr.to_string() } else { String::new() },
            "LocalNodeState": state,
            "ControlAvailable": s.manager.is_some(),
            "Error": "",
            "RemoteManagers": if managers.is_empty() { serde_json::Value::Null } else { managers.clone().into() },
            "Nodes": store.map_or(0, |st| st.nodes.len()),
            "Managers": store.map_or(0, |st| st.manager_count()),
            "Cluster": {"ID": store.and_then(|st| st.cluster.as_ref()).map(|c| c.id.clone()).unwrap_or_default()},
        },
    })
}

/// pflag's refusal, as the Docker CLI prints it (status 125).
fn usage(cmd: &str, what: &str) -> CommandOutput {
    CommandOutput::err(
        format!("{what}\n\nUsage:  docker {cmd} [OPTIONS]\n\nRun 'docker {cmd} --help' for more information\n"),
        125,
    )
}

/// The only flag of `docker info` and `docker version`: `-f, --format T`; no argument.
fn format_flag<'a>(cmd: &str, args: &'a [String]) -> Result<Option<&'a str>, CommandOutput> {
    match args {
        [] => Ok(None),
        [f, t] if f == "--format" || f == "-f" => Ok(Some(t.as_str())),
        [f] if f.starts_with("--format=") => Ok(Some(&f["--format=".len()..])),
        [flag, ..] if flag.starts_with("--") => {
            let name = flag.split('=').next().unwrap_or(flag);
            Err(usage(cmd, &crate::cli::text::unknown_flag(name)))
        }
        [flag, ..] if flag.starts_with('-') && flag.len() > 1 => {
            Err(usage(cmd, &crate::cli::text::unknown_flag(flag)))
        }
        _ => Err(CommandOutput::err(
            format!("docker: 'docker {cmd}' accepts no arguments\n\nUsage:  docker {cmd} [OPTIONS]\n\nRun 'docker {cmd} --help' for more information\n"),
            1,
        )),
    }
}

/// A `--format` template over the fields, one line.
fn formatted(template: &str, v: &serde_json::Value) -> CommandOutput {
    match crate::cli::swarm::render(template, v) {
        Ok(text) => CommandOutput::out(format!("{text}\n")),
        Err(e) => CommandOutput::err(format!("{e}\n"), 1),
    }
}

/// The Engine API version both sides speak (the 20.10 engine's), and the CLI's own.
const API_VERSION: &str = "1.41";
const CLI_API_VERSION: &str = "1.50";
/// What swarmlab says for a build fact it does not simulate.
const NOT_SIMULATED: &str = "swarmlab (not simulated)";

/// `docker version [--format T]`: the client's and the engine's versions. Every host
/// runs an engine, in a swarm or not; build facts (Go version, commit, build date) and
/// the engine's components are not simulated, and said so.
pub fn version(args: &[String]) -> CommandOutput {
    let format = match format_flag("version", args) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let v = serde_json::json!({
        "Client": {
            "Version": CLI_VERSION,
            "APIVersion": API_VERSION,
            "DefaultAPIVersion": CLI_API_VERSION,
            "GoVersion": NOT_SIMULATED,
            "GitCommit": NOT_SIMULATED,
            "BuildTime": NOT_SIMULATED,
            "Os": "linux",
            "Arch": "amd64",
            "Context": "default",
        },
        "Server": {
            "Version": crate::swarm::ENGINE_VERSION,
            "APIVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "GoVersion": NOT_SIMULATED,
            "GitCommit": NOT_SIMULATED,
            "BuildTime": NOT_SIMULATED,
            "Os": "linux",
            "Arch": "amd64",
            "Experimental": false,
        },
    });
    if let Some(t) = format {
        return formatted(t, &v);
    }
    CommandOutput::out(format!(
        "Client:\n Version:           {CLI_VERSION}\n API version:       {API_VERSION} (downgraded from {CLI_API_VERSION})\n Go version:        {NOT_SIMULATED}\n Git commit:        {NOT_SIMULATED}\n Built:             {NOT_SIMULATED}\n OS/Arch:           linux/amd64\n Context:           default\n\nServer:\n Engine:\n  Version:          {}\n  API version:      {API_VERSION} (minimum version 1.12)\n  Go version:       {NOT_SIMULATED}\n  Git commit:       {NOT_SIMULATED}\n  Built:            {NOT_SIMULATED}\n  OS/Arch:          linux/amd64\n  Experimental:     false\n swarmlab: containerd, runc and docker-init are not simulated\n",
        crate::swarm::ENGINE_VERSION
    ))
}

/// `docker info [--format T]`.
pub fn info(lab: &Lab, host: HostId, args: &[String]) -> CommandOutput {
    let v = fields(lab, host);
    let format = match format_flag("info", args) {
        Ok(f) => f,
        Err(e) => return e,
    };
    if let Some(t) = format {
        return formatted(t, &v);
    }
    let mut o = String::new();
    let _ = write!(
        o,
        "Client:\n Version:    {CLI_VERSION}\n Context:    default\n Debug Mode: false\n\nServer:\n Containers: {}\n  Running: {}\n  Paused: 0\n  Stopped: {}\n Images: {}\n Server Version: {}\n",
        v["Containers"], v["ContainersRunning"], v["ContainersStopped"], v["Images"],
        crate::swarm::ENGINE_VERSION
    );
    o.push_str(" Plugins:\n  Volume: local\n  Network: bridge host ipvlan macvlan null overlay\n");
    let sw = &v["Swarm"];
    if sw["LocalNodeState"] == "active" {
        let _ = writeln!(
            o,
            " Swarm: active\n  NodeID: {}",
            sw["NodeID"].as_str().unwrap_or("")
        );
        let manager = sw["ControlAvailable"] == true;
        let _ = writeln!(o, "  Is Manager: {manager}");
        if manager {
            let _ = write!(
                o,
                "  ClusterID: {}\n  Managers: {}\n  Nodes: {}\n  Data Path Port: 4789\n  Orchestration:\n   Task History Retention Limit: 5\n  Raft:\n   Snapshot Interval: 10000\n   Number of Old Snapshots to Retain: 0\n   Heartbeat Tick: 1\n   Election Tick: 10\n  Dispatcher:\n   Heartbeat Period: 5 seconds\n  CA Configuration:\n   Expiry Duration: 3 months\n   Force Rotate: 0\n  Autolock Managers: false\n  Root Rotation In Progress: false\n",
                sw["Cluster"]["ID"].as_str().unwrap_or(""),
                sw["Managers"],
                sw["Nodes"]
            );
        }
        let _ = writeln!(
            o,
            "  Node Address: {}",
            sw["NodeAddr"].as_str().unwrap_or("")
        );
        if let Some(ms) = sw["RemoteManagers"].as_array() {
            o.push_str("  Manager Addresses:\n");
            for m in ms {
                let _ = writeln!(o, "   {}", m.as_str().unwrap_or(""));
            }
        }
    } else {
        o.push_str(" Swarm: inactive\n");
    }
    let _ = write!(
        o,
        " Kernel Version: swarmlab (not simulated)\n Operating System: swarmlab simulated host\n OSType: linux\n Architecture: x86_64\n Name: {}\n Docker Root Dir: /var/lib/docker\n Debug Mode: false\n Experimental: false\n Live Restore Enabled: false\n",
        lab.host_name(host)
    );
    CommandOutput::out(o)
}
