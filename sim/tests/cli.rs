//! The `swarmlab` binary's contract: exit 0 when every expectation held, 1 when one
//! failed, 2 for an invalid scenario, with file:line:col on stderr.

use std::process::Command;

fn swarmlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swarmlab"))
        .args(args)
        .output()
        .expect("run swarmlab")
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn run_without_a_file_plays_the_default_scenario_and_exits_0() {
    let out = swarmlab(&["run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Hostname: "), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert!(!stdout.contains(" 0 held"), "{stdout}");
}

#[test]
fn failed_expectation_exits_1() {
    let p = write("fail.lab", "host a 192.168.1.1\nhost b 192.168.1.2\noverlay n vni=4097 subnet=10.0.0.0/24 hosts=a,b\na$ docker run -d --name x --network n alpine\nb$ docker run -d --name y --network n alpine\nblock b udp/4789\nexpect ping x y ok\n");
    let out = swarmlab(&["run", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn broken_line_exits_2_with_file_line_col_expected_and_hint() {
    let p = write("broken.lab", "host a 192.168.1.1\nlink a a latency=fast\n");
    for cmd in ["run", "check"] {
        let out = swarmlab(&[cmd, p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("broken.lab:2:18: expected a duration, found \"fast\""),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }
}

#[test]
fn check_accepts_a_valid_file() {
    let p = write("ok.lab", "host a 192.168.1.1\nsleep 1s\n");
    let out = swarmlab(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn out_writes_a_pcap_per_host_and_a_trace() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-out");
    let _ = std::fs::remove_dir_all(&dir);
    let out = swarmlab(&["run", "--seed", "3", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    for f in ["m1.pcap", "w2.pcap", "trace.jsonl"] {
        assert!(dir.join(f).metadata().unwrap().len() > 0, "{f}");
    }
    let trace = std::fs::read_to_string(dir.join("trace.jsonl")).unwrap();
    let first = trace.lines().next().unwrap();
    assert!(first.starts_with("{\"t_ns\":0,\"event\":"), "{first}");
    assert!(
        trace.contains("\"event\":\"underlay_drop\""),
        "the crashed host's drops are traced"
    );
    assert!(
        trace.contains("\"event\":\"balance\""),
        "the mesh's choices are traced"
    );
}

/// `swarmlab run` writes each timeline line when its step happens: the first line of a
/// long lab is readable while the lab is still being played. The lab below lets 2,000
/// gossip members run for an hour of virtual time (tens of seconds of wall time), so the
/// run cannot have ended by the time its first lines arrive.
#[test]
fn run_streams_the_timeline_while_the_lab_plays() {
    use std::io::{BufRead, BufReader};
    let p = write(
        "long.lab",
        "hosts n[1-2000] 10.1.0.0/16\ngossip n[1-2000] formed\nsleep 1h\nexpect members n1 count 2000\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmlab"))
        .args(["run", p.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run swarmlab");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = (0..4).map(|_| lines.next().unwrap().unwrap()).collect();
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first[0].starts_with("swarmlab: "), "{first:?}");
    assert!(first[1].contains("hosts n1..n2000"), "{first:?}");
    assert!(first[2].contains("gossip n1, n2, n3"), "{first:?}");
    assert!(first[3].contains("sleep 3600s"), "{first:?}");
    assert!(
        still_running,
        "the run ended before its first lines were read"
    );
}

/// A typo of a command, a docker command Docker lacks and one swarmlab does not
/// simulate are refused by `check` before anything runs, each at file:line:col with a
/// hint; a command meant to fail (an `expect error` or `expect exit N` after it) is not.
#[test]
fn check_refuses_typos_and_unsimulated_commands_with_did_you_mean() {
    let p = write(
        "typo.lab",
        "\u{feff}host m1 10.0.0.1\nm1$ dokcer service ls\nm1$ docker sevice ls\nm1$ docker service logs web\nm1$ docker frobnicate\nexpect error contains \"unknown command\"\n",
    );
    let out = swarmlab(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.lab:2:5: expected a command a host runs, found \"dokcer\""),
        "{err}"
    );
    assert!(err.contains("hint: did you mean \"docker\"?"), "{err}");
    assert!(err.contains("typo.lab:3:12: "), "{err}");
    assert!(err.contains("did you mean \"service\"?"), "{err}");
    assert!(
        err.contains("typo.lab:4:20: swarmlab does not simulate docker service logs yet"),
        "{err}"
    );
    assert!(!err.contains("typo.lab:5:"), "meant to fail: {err}");
    assert!(
        err.contains("3 command lines will not run as written"),
        "{err}"
    );
    // `run` plays it anyway, after the same findings as warnings.
    let out = swarmlab(&["run", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ") && err.contains("typo.lab:2:5: expected"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0));
}

/// Exit statuses count: `expect exit N` checks the last command's, and `--strict` fails
/// a run whose command exits non-zero when nothing expected it; the FAIL line and the
/// summary give FILE:LINE.
#[test]
fn strict_fails_an_unexpected_non_zero_exit_and_expect_exit_checks_one() {
    let p = write(
        "exits.lab",
        "host a 10.0.0.1\na$ docker rm gone\nexpect exit 1\na$ docker rm nothere\na$ docker ps\n",
    );
    let out = swarmlab(&["run", p.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = swarmlab(&["run", "--strict", p.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ok   expect exit 1 -- exit status 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "exits.lab:4: a$ docker rm nothere -- exit status 1, not expected (--strict)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "1 expectation, 1 held, 0 failed; 1 command exited non-zero unexpectedly (--strict)"
        ),
        "{stdout}"
    );
    let p = write(
        "exit-wrong.lab",
        "host a 10.0.0.1\na$ docker ps\nexpect exit 1\na$ docker ps\nexpect exit 0\n",
    );
    let out = swarmlab(&["run", "--fail-fast", p.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("FAIL ")
            && stdout.contains("exit-wrong.lab:3: expect exit 1 -- exit status 0"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("expect exit 0"),
        "--fail-fast stops: {stdout}"
    );
    assert!(
        stdout.contains("(stopped at the first failure: --fail-fast)"),
        "{stdout}"
    );
}

/// `--quiet` prints expectations, faults and the summary; `--color always` colours the
/// verdicts and faults, `never` (and NO_COLOR, off a terminal) does not.
#[test]
fn quiet_and_colours() {
    let p = write(
        "quiet.lab",
        "host a 10.0.0.1\nhost b 10.0.0.2\na$ docker ps\ncrash b\nexpect http b:80 fails\n",
    );
    let out = swarmlab(&["run", "-q", p.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("docker ps"), "{stdout}");
    assert!(!stdout.contains("swarmlab: "), "{stdout}");
    assert!(stdout.contains("crash b"), "{stdout}");
    assert!(stdout.contains("ok   expect http b:80 fails"), "{stdout}");
    assert!(stdout.contains("scenario finished"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "off a terminal, auto is plain");
    let out = swarmlab(&["run", "--color", "always", p.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\u{1b}[32mok  \u{1b}[0m"), "{stdout:?}");
    assert!(
        stdout.contains("\u{1b}[33m"),
        "the crash is yellow: {stdout:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_swarmlab"))
        .args(["run", "--color", "never", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

/// `swarmlab shell` on piped lines: scenario lines, `use HOST` and meta-commands;
/// `:save` writes a lab that `swarmlab run` replays to the same state.
#[test]
fn shell_on_piped_lines_saves_a_lab_that_replays() {
    use std::io::Write as _;
    let saved = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shell-saved.lab");
    let report = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shell-report.html");
    let _ = std::fs::remove_file(&saved);
    let _ = std::fs::remove_file(&report);
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmlab"))
        .args(["shell", "--seed", "3"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run swarmlab shell");
    let script = format!(
        "hosts m[1-2] 10.0.0.0/24\nuse m1\ndocker swarm init\nsleep 1s\n:time\ndocker node ls\nexpect output contains \"Leader\"\n:save {}\n:report {}\n:quit\n",
        saved.display(),
        report.display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("m1 [0.000s]$ docker swarm init"),
        "{stdout}"
    );
    assert!(stdout.contains("m1 [1.000s]$ :time\n1.000s"), "{stdout}");
    assert!(
        stdout.contains("ok   expect output contains \"Leader\""),
        "{stdout}"
    );
    assert!(stdout.contains("saved 5 lines to"), "{stdout}");
    let lab = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(
        lab,
        "hosts m[1-2] 10.0.0.0/24\nm1$ docker swarm init\nsleep 1s\nm1$ docker node ls\nexpect output contains \"Leader\"\n"
    );
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.contains("1 expectation, 1 held, 0 failed"), "{page}");
    assert!(page.contains("<svg"));
    let out = swarmlab(&["run", "--seed", "3", saved.to_str().unwrap()]);
    let replay = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{replay}");
    assert!(
        replay.contains("1 expectation, 1 held, 0 failed"),
        "{replay}"
    );
}

/// The shell on a pseudo-terminal, as a student types: a command, a tab completion
/// (`docker ser<TAB>` becomes `docker service`), and `:undo`; the screen is read back.
#[test]
fn shell_on_a_terminal_completes_and_undoes() {
    let history = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shell-history");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmlab"));
    cmd.args(["shell"])
        .env("SWARMLAB_HISTORY", &history)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("a pty");
    p.exp_string("swarmlab [0.000s]$ ").unwrap();
    p.send_line("hosts m[1-2] 10.0.0.0/24").unwrap();
    p.exp_string("hosts m1..m2").unwrap();
    p.send_line("use m1").unwrap();
    p.exp_string("m1 [0.000s]$ ").unwrap();
    p.send("docker ser").unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.exp_string("service").unwrap();
    p.send_line(" ls").unwrap();
    p.exp_string("This node is not a swarm manager").unwrap();
    p.send_line("sleep 5s").unwrap();
    p.exp_string("m1 [5.000s]$ ").unwrap();
    // Lines typed ahead (a pasted block) are all run.
    p.send_line("sleep 1s").unwrap();
    p.send_line(":time").unwrap();
    p.exp_string("6.000s").unwrap();
    p.send_line(":undo").unwrap();
    p.exp_string("undone: sleep 1s").unwrap();
    p.exp_string("m1 [5.000s]$ ").unwrap();
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.contains("docker service ls"), "{kept}");
}

/// A long run shows its progress on a terminal's stderr (virtual time, steps done,
/// events per second), and nothing on stderr that is not a terminal.
#[test]
fn progress_shows_on_a_terminal_only() {
    let p = write(
        "progress.lab",
        "hosts n[1-2000] 10.1.0.0/16\ngossip n[1-2000] formed\nsleep 1h\n",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmlab"));
    cmd.args(["run", p.to_str().unwrap()]);
    let mut s = rexpect::session::spawn_command(cmd, Some(30_000)).expect("a pty");
    s.exp_regex(r"virtual [0-9.]+s, step 2/3, [0-9.]+[kM] events/s")
        .unwrap();
    s.process.exit().unwrap();
    let short = write("short.lab", "host a 10.0.0.1\nsleep 10s\n");
    let out = swarmlab(&["run", short.to_str().unwrap()]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--color auto` colours on a terminal, and not when NO_COLOR is set.
#[test]
fn auto_colours_on_a_terminal_unless_no_color() {
    let p = write(
        "tty.lab",
        "host a 10.0.0.1\nhost b 10.0.0.2\ncrash b\nexpect http b:80 fails\n",
    );
    let shown = |no_color: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmlab"));
        cmd.args(["run", p.to_str().unwrap()]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let mut s = rexpect::session::spawn_command(cmd, Some(20_000)).expect("a pty");
        s.exp_eof().unwrap()
    };
    let coloured = shown(false);
    assert!(coloured.contains("\u{1b}[32mok  \u{1b}[0m"), "{coloured:?}");
    let plain = shown(true);
    assert!(plain.contains("ok   expect http b:80 fails"), "{plain:?}");
    assert!(
        !plain.contains('\u{1b}'),
        "a short run draws no spinner either: {plain:?}"
    );
}
