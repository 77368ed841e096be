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
    swarmlab::report::write_outputs(&outcome.lab, &dir).unwrap();
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
    swarmlab::report::write_outputs(&outcome.lab, &dir).unwrap();
    let fields = |filter: &str, fields: &[&str]| -> Vec<String> {
        let mut args = vec!["-r".to_string()];
        args.push(dir.join("w1.pcap").display().to_string());
        args.extend([
            "-Y".to_string(),
            filter.to_string(),
            "-T".into(),
            "fields".into(),
        ]);
        for f in fields {
            args.extend(["-e".to_string(), f.to_string()]);
        }
        let out = Command::new("tshark")
            .args(&args)
            .output()
            .expect("run tshark");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
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
