//! swarmlab's gossip member and HashiCorp memberlist (Go, v0.2.x from Debian) form one
//! cluster on real sockets on 127.0.0.1: each side joins the other, both list the same
//! members, a killed Go member is declared dead by ours, our leaving member is seen
//! leaving by Go, and all of it works with encryption on.
//!
//! The Go peer is `tests/memberlist_peer/main.go`, built in GOPATH mode against the
//! Debian package. Timers on both sides are shortened alike (probe 200 ms, suspicion
//! multiplier 2) so the test takes seconds; every wait polls for a condition with a
//! deadline.

use gossip::{security, Config, State};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use swarmlab::live_gossip;
use swarmlab_tests::{can_run, have};

const GOPATH: &str = "/usr/share/gocode";

fn go_ready() -> Result<(), String> {
    if !have("go") && Command::new("go").arg("version").output().is_err() {
        return Err("Go is not installed (apt-get install golang-go)".into());
    }
    if !std::path::Path::new(GOPATH)
        .join("src/github.com/hashicorp/memberlist")
        .exists()
    {
        return Err(
            "memberlist is not installed (apt-get install golang-github-hashicorp-memberlist-dev)"
                .into(),
        );
    }
    Ok(())
}

/// Build the Go peer once per test process.
fn peer_binary() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap();
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let out = go_build("memberlist_peer", "mlpeer");
    *built = Some(out.clone());
    out
}

/// Build the Go program in `dir` (relative to `tests/`) in GOPATH mode against Debian's
/// memberlist, into a temporary directory; the binary's path.
fn go_build(dir: &str, name: &str) -> PathBuf {
    let tmp = std::env::temp_dir().join(format!("swarmlab-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join(name);
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", tmp.join("cache"))
        .env("GOFLAGS", "-mod=")
        .output()
        .expect("run go build");
    assert!(
        status.status.success(),
        "go build of {dir} failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

struct GoPeer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl GoPeer {
    fn start(name: &str, port: u16, join: Option<u16>, key: Option<&str>) -> GoPeer {
        let mut cmd = Command::new(peer_binary());
        cmd.args([
            "-name",
            name,
            "-bind",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-fast",
            "-quiet",
        ]);
        if let Some(j) = join {
            cmd.args(["-join", &format!("127.0.0.1:{j}")]);
        }
        if let Some(k) = key {
            cmd.args(["-key", k]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Go peer");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (out, l2) = (child.stdout.take().unwrap(), lines.clone());
        // Keep reading: memberlist prints events under its lock and would stall.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        GoPeer { child, lines }
    }

    fn members(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("MEMBERS "))
            .map(|m| m.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn saw(&self, line: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l == line)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// memberlist's LAN profile with the Go peer's `-fast` timers.
fn fast_config() -> Config {
    Config {
        probe_interval: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(100),
        gossip_interval: Duration::from_millis(50),
        push_pull_interval: Duration::from_secs(2),
        gossip_to_the_dead: Duration::from_secs(2),
        tcp_timeout: Duration::from_secs(2),
        suspicion_mult: 2,
        ..Config::memberlist_lan()
    }
}

fn ports(offset: u16) -> (u16, u16, u16) {
    let base = 21000 + (std::process::id() % 900) as u16 * 10 + offset;
    (base, base + 1, base + 2)
}

fn names(v: &[(String, State)], state: State) -> Vec<String> {
    v.iter()
        .filter(|(_, s)| *s == state)
        .map(|(n, _)| n.clone())
        .collect()
}

fn cluster(key: Option<[u8; 16]>, offset: u16) {
    let (p_go1, p_rs, p_go2) = ports(offset);
    let b64 = key.map(|k| base64(&k));
    let mut config = fast_config();
    if let Some(k) = key {
        config.keyring = security::Keyring::new(security::Key::new(&k).unwrap());
    }
    let go1 = GoPeer::start("go1", p_go1, None, b64.as_deref());
    wait_for("go1 to start", Duration::from_secs(10), || {
        go1.saw(&format!("JOIN go1 127.0.0.1:{p_go1}"))
    });

    // We join Go.
    let rs = live_gossip::spawn(
        "rs1",
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, p_rs),
        vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, p_go1)],
        config.clone(),
    )
    .expect("start our member");
    wait_for(
        "both sides to list go1 and rs1",
        Duration::from_secs(10),
        || go1.members() == ["go1", "rs1"] && names(&rs.view(), State::Alive) == ["go1", "rs1"],
    );

    // Go joins us.
    let mut go2 = GoPeer::start("go2", p_go2, Some(p_rs), b64.as_deref());
    wait_for(
        "all three to list all three",
        Duration::from_secs(10),
        || {
            go1.members() == ["go1", "go2", "rs1"]
                && go2.members() == ["go1", "go2", "rs1"]
                && names(&rs.view(), State::Alive) == ["go1", "go2", "rs1"]
        },
    );

    // A peer that connects and says nothing must not hold up our member: streams are
    // served beside the UDP loop, not in it. Keep this connection open for the rest.
    let _silent = std::net::TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p_rs))
        .expect("connect");

    // Kill go2: our member declares it dead within memberlist's bound: a probe round
    // (200 ms, stretched up to 8x by awareness), the suspicion timeout (400 ms at n < 10
    // with multiplier 2; 2.4 s at most) and gossip.
    go2.kill();
    let took = wait_for("rs1 to mark go2 dead", Duration::from_secs(10), || {
        names(&rs.view(), State::Dead).contains(&"go2".to_string())
    });
    let bound = Duration::from_millis(200 * 8 + 2400 + 1000);
    assert!(
        took < bound,
        "go2 declared dead after {took:?}, beyond {bound:?}"
    );
    let events = rs.shared.lock().unwrap().events.clone();
    assert!(
        events
            .iter()
            .any(|e| e.member == "go2" && e.kind == gossip::EventKind::Suspect),
        "{events:?}"
    );

    // Our member leaves: Go sees it leave.
    rs.leave().expect("leave cleanly");
    wait_for("go1 to see rs1 leave", Duration::from_secs(10), || {
        go1.saw("LEAVE rs1")
    });
    wait_for("go1 to list only itself", Duration::from_secs(10), || {
        go1.members() == ["go1"]
    });
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn rust_and_go_members_form_one_cluster() {
    let ready = go_ready();
    let why = ready.clone().err().unwrap_or_default();
    if !can_run("memberlist interop", ready.is_ok(), &why) {
        return;
    }
    cluster(None, 0);
}

#[test]
fn encrypted_gossip_works_both_ways() {
    let ready = go_ready();
    let why = ready.clone().err().unwrap_or_default();
    if !can_run("memberlist interop (encrypted)", ready.is_ok(), &why) {
        return;
    }
    cluster(Some(*b"swarmlab-key-16b"), 5);
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b"swarmlab-key-16b"), "c3dhcm1sYWIta2V5LTE2Yg==");
}

/// The Go program behind the false-positive comparison in BENCHMARKS.md
/// (`benches/memberlist_loss`) builds against the same memberlist, and the log lines it
/// counts are the ones memberlist writes: at 50% loss, 10 members must suspect someone.
#[test]
fn the_memberlist_loss_experiment_counts_real_suspicions() {
    let ready = go_ready();
    let why = ready.clone().err().unwrap_or_default();
    if !can_run("memberlist loss experiment", ready.is_ok(), &why) {
        return;
    }
    let out = go_build("../benches/memberlist_loss", "mlloss");
    // 30 protocol seconds at 5 times speed: 6 s of wall time once the cluster formed.
    let run = |args: &[&str]| -> String {
        let run = Command::new(&out)
            .args(["-n", "10", "-minutes", "0.5"])
            .args(args)
            .output()
            .expect("run the experiment");
        let stdout = String::from_utf8_lossy(&run.stdout).to_string();
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        stdout
    };
    let field = |stdout: &str, name: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {stdout:?}"))
    };
    let lossy = run(&["-loss", "0.5", "-port", "31700"]);
    assert!(lossy.starts_with("lifeguard=on loss=0.5 "), "{lossy}");
    assert_eq!(field(&lossy, "n"), 10, "{lossy}");
    assert!(field(&lossy, "suspicions") > 0, "{lossy}");
    // Distinct members whose suspicion timed out, never more than the timeouts.
    assert!(
        field(&lossy, "dead-members") <= field(&lossy, "deaths"),
        "{lossy}"
    );
    // A member that handles everything 1.5 s late is suspected by the others.
    let lagging = run(&["-loss", "0", "-lag", "1.5s", "-port", "31720"]);
    assert!(field(&lagging, "n0-suspected") > 0, "{lagging}");
}
