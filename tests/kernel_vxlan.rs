//! Our wire format is the real one: a Linux kernel `vxlan` device in one network
//! namespace pings a container served by swarmlab's VTEP (the live driver) in another
//! namespace, across a veth pair. The kernel's ARP and ICMP echo go through the tunnel;
//! our replies come back and the kernel's ping counts them.
//!
//! Two transports: with a UDP socket on 4789 (the kernel builds our outer headers), and
//! with whole frames on an AF_PACKET socket, where every outer byte is ours and the
//! kernel's IPv4 and UDP receive paths check them (a bad IP checksum or length is
//! dropped before the vxlan device sees it).

use std::os::fd::AsRawFd;
use std::process::Command;
use swarmlab_tests::{can_run, have, is_root};

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether network namespaces can be made here (root and CAP_SYS_ADMIN, iproute2).
fn netns_possible(probe: &str) -> Result<(), String> {
    if !is_root() {
        return Err("it needs root to make network namespaces".into());
    }
    if !have("ip") || !have("ping") {
        return Err("iproute2 and iputils-ping are not installed".into());
    }
    let made = Command::new("ip").args(["netns", "add", probe]).output();
    let _ = Command::new("ip").args(["netns", "del", probe]).output();
    match made {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "ip netns add failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run ip: {e}")),
    }
}

#[test]
fn kernel_vxlan_device_pings_a_container_behind_our_vtep_socket() {
    interop(false);
}

#[test]
fn kernel_vxlan_device_pings_a_container_behind_our_vtep_raw_frames() {
    interop(true);
}

fn interop(raw: bool) {
    let id = std::process::id() % 10_000 * 10 + u32::from(raw);
    // Each test probes with its own name: the two run in parallel.
    let possible = netns_possible(&format!("slp{id}"));
    let why = possible.clone().err().unwrap_or_default();
    if !can_run("kernel VXLAN interop", possible.is_ok(), &why) {
        return;
    }
    let (kern, ours) = (format!("slk{id}"), format!("slo{id}"));
    let guard = Netns(vec![kern.clone(), ours.clone()]);
    let (veth_k, veth_o) = (format!("vk{id}"), format!("vo{id}"));
    sh(&["ip", "netns", "add", &kern]);
    sh(&["ip", "netns", "add", &ours]);
    sh(&[
        "ip", "link", "add", &veth_k, "type", "veth", "peer", "name", &veth_o,
    ]);
    sh(&["ip", "link", "set", &veth_k, "netns", &kern]);
    sh(&["ip", "link", "set", &veth_o, "netns", &ours]);
    let in_k = |cmd: &str| {
        let mut v = vec!["ip", "netns", "exec", &kern];
        v.extend(cmd.split(' '));
        sh(&v);
    };
    let in_o = |cmd: &str| {
        let mut v = vec!["ip", "netns", "exec", &ours];
        v.extend(cmd.split(' '));
        sh(&v);
    };
    in_k(&format!("ip addr add 10.200.0.1/24 dev {veth_k}"));
    in_k(&format!("ip link set {veth_k} up"));
    in_k("ip link set lo up");
    in_o(&format!("ip addr add 10.200.0.2/24 dev {veth_o}"));
    in_o(&format!("ip link set {veth_o} up"));
    in_o("ip link set lo up");
    // The kernel's VTEP, as Docker makes one (libnetwork leaves UDP checksums off), with
    // the remote as default destination. With checksums on, veth's offload would hand
    // the packet socket frames whose checksum is only partial.
    in_k(&format!(
        "ip link add vx0 type vxlan id 4097 local 10.200.0.1 remote 10.200.0.2 dstport 4789 noudpcsum dev {veth_k}"
    ));
    in_k("ip link set vx0 mtu 1450");
    in_k("ip addr add 10.0.1.1/24 dev vx0");
    in_k("ip link set vx0 up");

    // Our VTEP, in a thread that has entered the other namespace (setns is per thread
    // for network namespaces), on a real socket.
    let ns_file = std::fs::File::open(format!("/var/run/netns/{ours}")).expect("open netns");
    let veth_o_thread = veth_o.clone();
    let server = std::thread::spawn(move || {
        // SAFETY: a valid fd of a network namespace; only this thread changes namespace.
        let rc = unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        swarmlab::live::run_vtep(swarmlab::live::LiveArgs {
            local: "10.200.0.2".parse().unwrap(),
            port: 4789,
            remote: "10.200.0.1".parse().unwrap(),
            vni: 4097,
            ip: "10.0.1.2".parse().unwrap(),
            mac: None,
            echo_replies: 3,
            idle_secs: 20,
            raw: raw.then_some(veth_o_thread),
        })
    });

    // The kernel's ping retries until our socket is bound: -w bounds the whole run.
    let out = Command::new("ip")
        .args([
            "netns", "exec", &kern, "ping", "-c", "3", "-i", "0.2", "-w", "15", "10.0.1.2",
        ])
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kernel ping failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 received"), "{text}");
    assert!(text.contains("64 bytes from 10.0.1.2: icmp_seq="), "{text}");

    let served = server.join().expect("VTEP thread panicked");
    assert!(served.is_ok(), "our VTEP: {served:?}");

    // The kernel learned our container's MAC through the tunnel (Docker's 02:42 form).
    let neigh = Command::new("ip")
        .args(["netns", "exec", &kern, "ip", "neigh", "show", "dev", "vx0"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(
        neigh.contains("10.0.1.2 lladdr 02:42:0a:00:01:02"),
        "{neigh}"
    );
    drop(guard);
}
