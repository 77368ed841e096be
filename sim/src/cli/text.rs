//! The texts the Docker CLI prints, shared by the commands: its usage errors, tables,
//! durations, truncations, and the ids and names the engine makes up.

use crate::lab::Lab;
use crate::output::CommandOutput;
use crate::time::Duration;

/// Docker's wording for a command line clap refused.
pub(crate) fn usage_error(cmd: &str, usage: &str, e: &clap::Error) -> CommandOutput {
    use clap::error::{ContextKind, ErrorKind};
    let arg = e
        .get(ContextKind::InvalidArg)
        .map(|v| v.to_string())
        .unwrap_or_default();
    if e.kind() == ErrorKind::UnknownArgument && !arg.starts_with('-') && !arg.is_empty() {
        // A word where none was expected: cobra's argument-count message.
        return CommandOutput::err(
            format!("\"docker {cmd}\" accepts no arguments.\nSee 'docker {cmd} --help'.\n\nUsage:  docker {cmd} {usage}\n"),
            1,
        );
    }
    let first = match e.kind() {
        ErrorKind::UnknownArgument => {
            let flag = arg.split('=').next().unwrap_or(&arg);
            if crate::dockerref::has_flag(cmd, flag) {
                // Docker's flag, not simulated: say so as swarmlab.
                return CommandOutput::err(
                    format!("swarmlab: docker {cmd} {flag} is not simulated yet\n"),
                    1,
                );
            }
            unknown_flag(flag)
        }
        ErrorKind::InvalidValue if arg.is_empty() => "flag needs an argument".to_string(),
        _ => {
            let flag = arg.split(' ').next().unwrap_or(&arg).to_string();
            format!("flag needs an argument: {flag}")
        }
    };
    CommandOutput::err(
        format!("{first}\n\nUsage:  docker {cmd} {usage}\n\nRun 'docker {cmd} --help' for more information\n"),
        125,
    )
}

/// pflag's refusal of a flag it does not know: `unknown flag: --bogus`, or for a
/// shorthand `unknown shorthand flag: 'v' in -v`.
pub(crate) fn unknown_flag(flag: &str) -> String {
    match flag.strip_prefix('-') {
        Some(short) if !short.starts_with('-') && !short.is_empty() => {
            let c = short.chars().next().unwrap_or('-');
            format!("unknown shorthand flag: '{c}' in {flag}")
        }
        _ => format!("unknown flag: {flag}"),
    }
}

/// A name as Docker gives unnamed containers: adjective_surname (a few of its words).
pub(crate) fn random_name(lab: &mut Lab) -> String {
    const LEFT: &[&str] = &[
        "admiring", "brave", "clever", "eager", "festive", "gallant", "happy", "jolly", "keen",
        "loving", "nifty", "quirky", "serene", "sharp", "vigilant", "zealous",
    ];
    const RIGHT: &[&str] = &[
        "babbage", "curie", "dijkstra", "euler", "hopper", "kilby", "lamport", "liskov",
        "lovelace", "noether", "pike", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    loop {
        let l = LEFT[lab.rng.below(LEFT.len() as u64) as usize];
        let r = RIGHT[lab.rng.below(RIGHT.len() as u64) as usize];
        let name = format!("{l}_{r}");
        if lab.container_by_ref(&name).is_none() {
            return name;
        }
        if lab.containers.len() > LEFT.len() * RIGHT.len() / 2 {
            return format!("{name}{}", lab.containers.len());
        }
    }
}

/// A duration as Go's `time.Duration` prints it: `0s`, `300ms`, `1.5s`, `1m30s`,
/// `1h0m0s`.
pub fn go_duration(ns: u64) -> String {
    fn frac(whole: u64, rest: u64, digits: usize) -> String {
        let mut f = format!("{rest:0digits$}");
        while f.ends_with('0') {
            f.pop();
        }
        if f.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{f}")
        }
    }
    match ns {
        0 => "0s".into(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{}µs", frac(ns / 1_000, ns % 1_000, 3)),
        1_000_000..=999_999_999 => format!("{}ms", frac(ns / 1_000_000, ns % 1_000_000, 6)),
        _ => {
            let secs = ns / 1_000_000_000;
            let s = frac(secs % 60, ns % 1_000_000_000, 9);
            let (h, m) = (secs / 3600, secs / 60 % 60);
            if h > 0 {
                format!("{h}h{m}m{s}s")
            } else if m > 0 {
                format!("{m}m{s}s")
            } else {
                format!("{s}s")
            }
        }
    }
}

/// A float as Go's `%v` prints it (`0`, `0.25`, `2`), which JSON shows the same way.
pub fn go_float(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Value::from(x)
    }
}

/// Docker's "human" durations (go-units HumanDuration).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_nanos() / 1_000_000_000;
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 46 * 60 => format!("{} minutes", s / 60),
        _ if s < 90 * 60 => "About an hour".into(),
        _ => format!("{} hours", s / 3600),
    }
}

/// Lay out a table as the Docker CLI's tabwriter does (min width 10, padding 3): every
/// column but the last is padded to its widest cell plus three spaces, or to 10; an
/// empty last column leaves the padding of the one before it, as in Docker.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                let width = (widths[c] + 3).max(10);
                line.push_str(&" ".repeat(width - cell.chars().count()));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Cut `s` to `max` characters, the last one an ellipsis, as the Docker CLI truncates.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// 12 hex digits derived from some bytes (FNV-1a): the stable ids of objects swarmlab
/// does not draw from the RNG (task containers, a host's local networks).
pub(crate) fn hash_id(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// When a lab starts, as its clocks show it: 2026-01-01T00:00:00Z (virtual time counts
/// from there; a fixed date keeps the output the same from run to run).
pub(crate) const LAB_EPOCH_SECS: u64 = 1_767_225_600;

/// A virtual time as Docker's JSON timestamps print it (RFC 3339 with nanoseconds, UTC).
pub(crate) fn rfc3339(nanos: u64) -> String {
    unix_rfc3339(nanos.saturating_add(LAB_EPOCH_SECS * 1_000_000_000))
}

/// Nanoseconds since the Unix epoch in RFC 3339.
fn unix_rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos % 1_000_000_000
    )
}

#[cfg(test)]
mod time_tests {
    use super::go_duration;

    #[test]
    fn go_durations_print_as_go_does() {
        let cases = [
            (0, "0s"),
            (500, "500ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
        ];
        for (ns, text) in cases {
            assert_eq!(go_duration(ns), text);
        }
    }

    #[test]
    fn rfc3339_counts_from_the_epoch_across_leap_years() {
        assert_eq!(super::unix_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::unix_rfc3339(951_782_400_000_000_005),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            super::unix_rfc3339(1_798_761_599_000_000_000),
            "2026-12-31T23:59:59.000000000Z"
        );
        // A lab starts on the first of January 2026.
        assert_eq!(
            super::rfc3339(1_500_000_000),
            "2026-01-01T00:00:01.500000000Z"
        );
    }
}
