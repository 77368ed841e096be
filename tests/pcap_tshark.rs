//! The pcaps of `--out` are real: tshark decodes them as VXLAN carrying the scenario's VNI.

use std::process::Command;
use swarmlab_tests::{can_run, have, overlay_scenario, scratch_dir};

#[test]
fn tshark_decodes_the_underlay_pcap_as_vxlan_with_the_scenario_vni() {
    if !can_run(
        "tshark pcap decoding",
        have("tshark"),
        "tshark is not installed (apt-get install tshark)",
    ) {
        return;
    }
    let outcome = swarmlab::scenario::run::run(&overlay_scenario(), 1, true);
    let dir = scratch_dir("pcap");
    swarmlab::report::write_outputs(&outcome.lab, &dir, None).unwrap();
    for host in ["node1", "node2"] {
        let pcap = dir.join(format!("{host}.pcap"));
        let out = Command::new("tshark")
            .args(["-r"])
            .arg(&pcap)
            .args([
                "-T",
                "fields",
                "-e",
                "frame.protocols",
                "-e",
                "vxlan.vni",
                "-e",
                "udp.dstport",
            ])
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 6, "{host}: too few packets:\n{text}");
        for line in &lines {
            let cols: Vec<&str> = line.split('\t').collect();
            // ICMP echo payload shows as ":data", as with any real ping.
            assert!(
                cols[0].starts_with("eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp"),
                "{host}: {line}"
            );
            assert_eq!(cols[1], "4097", "{host}: {line}");
            assert_eq!(cols[2], "4789", "{host}: {line}");
        }
    }
    // The pcap carries virtual time: the first ping's request leaves node1 at t=0.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(dir.join("node1.pcap"))
        .args(["-T", "fields", "-e", "frame.time_epoch", "-c", "1"])
        .output()
        .unwrap();
    let t: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(t < 1.0, "first frame at {t}s of virtual time");
}

#[test]
fn tshark_decodes_the_mesh_http_requests_and_handshakes_inside_vxlan() {
    if !can_run(
        "tshark pcap decoding",
        have("tshark"),
        "tshark is not installed (apt-get install tshark)",
    ) {
        return;
    }
    // The default scenario's tour: curl through the routing mesh to whoami tasks.
    let outcome = swarmlab::scenario::run::run(&swarmlab_tests::default_scenario(), 1, true);
    let dir = scratch_dir("pcap-mesh");
    swarmlab::report::write_outputs(&outcome.lab, &dir, None).unwrap();
    let w1 = dir.join("w1.pcap");
    let fields = |filter: &str, fields: &[&str]| tshark_fields(&w1, filter, fields);
    // HTTP requests inside VXLAN on the ingress network (VNI 4096), from a node's ingress
    // sandbox (SNAT, 10.0.0.x) to a task (DNAT to port 80).
    let requests = fields(
        "vxlan && http.request",
        &["vxlan.vni", "http.request.method", "tcp.dstport", "ip.src"],
    );
    assert!(requests.len() >= 3, "{requests:?}");
    for r in &requests {
        let cols: Vec<&str> = r.split('\t').collect();
        assert_eq!(cols[0], "4096", "{r}");
        assert_eq!(cols[1], "GET", "{r}");
        assert_eq!(cols[2], "80", "{r}");
        assert!(cols[3].contains("10.0.0."), "{r}");
    }
    // The TCP handshakes ride there too: SYN, then SYN-ACK with the overlay's MSS.
    let synacks = fields(
        "vxlan && tcp.flags.syn == 1 && tcp.flags.ack == 1",
        &["tcp.options.mss_val"],
    );
    assert!(!synacks.is_empty());
    assert!(synacks.iter().all(|m| m == "1410"), "{synacks:?}");
}

/// tshark's fields for the packets of `pcap` that match `filter`, one line each.
fn tshark_fields(pcap: &std::path::Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The course's ports show in a student's capture: agents open tcp/2377 to a manager
/// and exchange data on it, managers talk Raft to each other on it, and memberlist's
/// push/pull opens, carries and closes tcp/7946 streams. tshark finds every stream's
/// sequence numbers consistent (no analysis warnings).
#[test]
fn tshark_sees_handshakes_and_data_on_the_control_ports_of_the_default_scenario() {
    if !can_run(
        "tshark pcap decoding",
        have("tshark"),
        "tshark is not installed (apt-get install tshark)",
    ) {
        return;
    }
    let outcome = swarmlab::scenario::run::run(&swarmlab_tests::default_scenario(), 1, true);
    let dir = scratch_dir("pcap-control");
    swarmlab::report::write_outputs(&outcome.lab, &dir, None).unwrap();
    let (w1, m1) = (dir.join("w1.pcap"), dir.join("m1.pcap"));
    // w1 (10.10.1.1), a worker, dials a manager (10.10.0.x) on 2377.
    let syns = tshark_fields(
        &w1,
        "tcp.dstport == 2377 && tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["ip.src", "ip.dst"],
    );
    assert!(
        syns.iter().any(|l| l.starts_with("10.10.1.1\t10.10.0.")),
        "no SYN from w1 to a manager's 2377: {syns:?}"
    );
    let syn_acks = tshark_fields(
        &w1,
        "tcp.srcport == 2377 && tcp.flags.syn == 1 && tcp.flags.ack == 1",
        &["ip.src"],
    );
    assert!(
        !syn_acks.is_empty(),
        "no SYN-ACK from a manager on w1's tap"
    );
    for (filter, what) in [
        ("tcp.dstport == 2377 && tcp.len > 0", "agent to manager"),
        ("tcp.srcport == 2377 && tcp.len > 0", "manager to agent"),
    ] {
        assert!(
            !tshark_fields(&w1, filter, &["tcp.len"]).is_empty(),
            "no data {what}"
        );
    }
    // Raft between managers: m2 and m3 send m1 data on 2377.
    let raft = tshark_fields(
        &m1,
        "tcp.port == 2377 && tcp.len > 0",
        &["ip.src", "ip.dst"],
    );
    for peer in ["10.10.0.2", "10.10.0.3"] {
        assert!(
            raft.iter()
                .any(|l| l.starts_with(peer) || l.ends_with(peer)),
            "no 2377 data between m1 and {peer}: {raft:?}"
        );
    }
    // Push/pull on 7946: a handshake, data both ways, and a FIN.
    for (filter, what) in [
        ("tcp.port == 7946 && tcp.flags.syn == 1", "SYN"),
        ("tcp.dstport == 7946 && tcp.len > 0", "push"),
        ("tcp.srcport == 7946 && tcp.len > 0", "pull"),
        ("tcp.port == 7946 && tcp.flags.fin == 1", "FIN"),
    ] {
        assert!(
            !tshark_fields(&m1, filter, &["frame.number"]).is_empty(),
            "no {what} on tcp/7946 in m1's capture"
        );
    }
    for host in ["m1", "m2", "m3", "w1", "w2"] {
        let pcap = &dir.join(format!("{host}.pcap"));
        let warned = tshark_fields(
            pcap,
            "(tcp.port == 2377 || tcp.port == 7946) && tcp.analysis.flags && !tcp.analysis.window_update",
            &["frame.number", "_ws.col.Info"],
        );
        assert!(warned.is_empty(), "{}: {warned:?}", pcap.display());
    }
}
