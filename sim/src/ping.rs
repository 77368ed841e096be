//! `ping`, as iputils prints it: the header, one line per reply or error, and the
//! statistics, with times in virtual milliseconds.
//!
//! This module formats and counts; `lab` sends the packets and feeds the replies in.
//! It imports nothing above itself (a program's core: no lab, no clock).

use crate::ids::ContainerId;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Index of a ping session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PingId(pub usize);

/// The options of a `ping` run.
#[derive(Debug, Clone, Copy)]
pub struct PingOptions {
    /// `-n`: print addresses, not names.
    pub numeric: bool,
    /// `-c`.
    pub count: u32,
    /// `-s`: ICMP payload bytes.
    pub size: usize,
    /// `-i`.
    pub interval: Duration,
    /// `-W`: how long to wait when nothing came back.
    pub timeout: Duration,
}

impl Default for PingOptions {
    /// iputils' defaults, with one request.
    fn default() -> PingOptions {
        PingOptions {
            numeric: false,
            count: 1,
            size: 56,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One run of `ping`.
#[derive(Debug, Clone)]
pub struct Ping {
    /// Its id.
    pub id: PingId,
    /// The container it runs in.
    pub container: ContainerId,
    /// The destination as typed.
    pub target: String,
    /// The destination address.
    pub dst: Ipv4Addr,
    /// `-c`.
    pub count: u32,
    /// `-s`: ICMP payload bytes.
    pub size: usize,
    /// `-i`.
    pub interval: Duration,
    /// `-W`: how long to wait when nothing came back.
    pub timeout: Duration,
    start: Instant,
    /// When each request left, by its index (its sequence number is the index + 1,
    /// modulo 2^16, as iputils' 16-bit icmp_seq wraps).
    sent: Vec<Instant>,
    /// Round trips, by request index: the count goes past 65,535 though the sequence
    /// number wraps.
    rtts: BTreeMap<u32, Duration>,
    errors: u32,
    last: Instant,
    /// Standard output so far.
    pub stdout: Vec<String>,
    /// Whether it has printed its statistics.
    pub finished: bool,
    /// `-n`.
    pub numeric: bool,
}

/// iputils' per-reply time: three significant digits, from microseconds.
pub fn format_rtt(rtt: Duration) -> String {
    let t = rtt.as_micros();
    if t >= 100_000 - 50 {
        format!("{}", (t + 500) / 1000)
    } else if t >= 10_000 - 5 {
        let t = t + 50;
        format!("{}.{:01}", t / 1000, (t % 1000) / 100)
    } else if t >= 1000 {
        let t = t + 5;
        format!("{}.{:02}", t / 1000, (t % 1000) / 10)
    } else {
        format!("{}.{:03}", t / 1000, t % 1000)
    }
}

/// C's `%g` for a percentage: six significant digits, no trailing zeros.
fn format_g(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = 6 - 1 - x.abs().log10().floor() as i32;
    let s = format!("{:.*}", digits.max(0) as usize, x);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl Ping {
    /// A session that has printed its header.
    pub fn new(
        id: PingId,
        container: ContainerId,
        target: &str,
        dst: Ipv4Addr,
        options: PingOptions,
        now: Instant,
    ) -> Ping {
        let PingOptions {
            numeric,
            count,
            size,
            interval,
            timeout,
        } = options;
        Ping {
            id,
            container,
            target: target.to_string(),
            dst,
            count,
            size,
            interval,
            timeout,
            start: now,
            sent: Vec::new(),
            rtts: BTreeMap::new(),
            errors: 0,
            last: now,
            stdout: vec![format!(
                "PING {target} ({dst}) {size}({}) bytes of data.",
                size + 28
            )],
            finished: false,
            numeric,
        }
    }

    /// The sequence number of the next request, if the count allows one.
    pub fn next_seq(&mut self, now: Instant) -> Option<u16> {
        if self.sent.len() as u32 >= self.count {
            return None;
        }
        self.sent.push(now);
        self.last = self.last.max(now);
        // iputils' icmp_seq is 16 bits: 65535 is followed by 0.
        Some((self.sent.len() % 65_536) as u16)
    }

    /// Whether more requests remain after the ones sent.
    pub fn has_more(&self) -> bool {
        (self.sent.len() as u32) < self.count
    }

    /// How long to wait after the last request: `-W` when nothing came back, otherwise
    /// twice the longest round trip (iputils' rule).
    pub fn linger(&self) -> Duration {
        match self.rtts.values().max() {
            None => self.timeout,
            Some(max) => Duration(max.as_nanos() * 2).max(Duration::from_millis(1)),
        }
    }

    fn complete(&self) -> bool {
        !self.has_more() && self.rtts.len() as u32 + self.errors >= self.count
    }

    /// The index of the latest request sent with sequence number `seq`.
    fn index_of(&self, seq: u16) -> Option<u32> {
        let last = i64::try_from(self.sent.len()).ok()? - 1;
        let want = (i64::from(seq) + 65_535) % 65_536; // index ≡ seq - 1 (mod 2^16)
        let back = (last - want).rem_euclid(65_536);
        let i = last - back;
        u32::try_from(i).ok()
    }

    /// An echo reply arrived; returns whether the session is complete.
    pub fn on_reply(&mut self, now: Instant, seq: u16, from: &str, ttl: u8, len: usize) -> bool {
        let Some(index) = self.index_of(seq) else {
            return false;
        };
        let rtt = now - self.sent[index as usize];
        let dup = self.rtts.contains_key(&index);
        self.stdout.push(format!(
            "{len} bytes from {from}: icmp_seq={seq} ttl={ttl} time={} ms{}",
            format_rtt(rtt),
            if dup { " (DUP!)" } else { "" }
        ));
        if !dup {
            self.rtts.insert(index, rtt);
        }
        self.last = self.last.max(now);
        self.complete()
    }

    /// The stack reported the destination unreachable for `seq`.
    pub fn on_unreachable(&mut self, now: Instant, seq: u16, src: Ipv4Addr) -> bool {
        self.stdout.push(format!(
            "From {src} icmp_seq={seq} Destination Host Unreachable"
        ));
        self.errors += 1;
        self.last = self.last.max(now);
        self.complete()
    }

    /// Print the statistics.
    pub fn finish(&mut self, _now: Instant) {
        self.finished = true;
        let tx = self.sent.len();
        let rx = self.rtts.len();
        let loss = if tx == 0 {
            0.0
        } else {
            (tx - rx) as f64 * 100.0 / tx as f64
        };
        let errors = if self.errors > 0 {
            format!("+{} errors, ", self.errors)
        } else {
            String::new()
        };
        self.stdout.push(String::new());
        self.stdout
            .push(format!("--- {} ping statistics ---", self.target));
        self.stdout.push(format!(
            "{tx} packets transmitted, {rx} received, {errors}{}% packet loss, time {}ms",
            format_g(loss),
            (self.last - self.start).as_millis()
        ));
        if rx > 0 {
            let us: Vec<f64> = self.rtts.values().map(|d| d.as_micros() as f64).collect();
            let n = us.len() as f64;
            let avg = us.iter().sum::<f64>() / n;
            let mdev = (us.iter().map(|x| x * x).sum::<f64>() / n - avg * avg)
                .max(0.0)
                .sqrt();
            let min = us.iter().cloned().fold(f64::MAX, f64::min);
            let max = us.iter().cloned().fold(0.0, f64::max);
            let f = |x: f64| {
                let x = x as u64;
                format!("{}.{:03}", x / 1000, x % 1000)
            };
            self.stdout.push(format!(
                "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
                f(min),
                f(avg),
                f(max),
                f(mdev)
            ));
        }
    }

    /// The round trip of the first reply received, if any (what a probe reports,
    /// without reading the printed lines).
    pub fn first_rtt(&self) -> Option<Duration> {
        self.rtts.values().next().copied()
    }

    /// Whether the stack reported the destination unreachable.
    pub fn unreachable(&self) -> bool {
        self.errors > 0
    }

    /// Replies received.
    pub fn received(&self) -> usize {
        self.rtts.len()
    }

    /// Exit status: 0 when anything came back, 1 otherwise (iputils).
    pub fn exit_code(&self) -> i32 {
        if self.rtts.is_empty() {
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_times_have_three_significant_digits_like_iputils() {
        assert_eq!(format_rtt(Duration::from_micros(213)), "0.213");
        assert_eq!(format_rtt(Duration::from_micros(4021)), "4.02");
        assert_eq!(format_rtt(Duration::from_micros(42_140)), "42.1");
        assert_eq!(format_rtt(Duration::from_micros(421_000)), "421");
    }

    #[test]
    fn loss_percent_prints_like_c_percent_g() {
        assert_eq!(format_g(100.0 / 3.0), "33.3333");
        assert_eq!(format_g(100.0), "100");
        assert_eq!(format_g(0.0), "0");
        assert_eq!(format_g(50.0), "50");
    }

    #[test]
    fn the_sequence_number_wraps_but_the_count_does_not() {
        let options = PingOptions {
            count: 70_000,
            ..Default::default()
        };
        let ip = Ipv4Addr::new(10, 0, 1, 3);
        let mut p = Ping::new(PingId(0), ContainerId(0), "c2", ip, options, Instant(0));
        for k in 0..70_000u64 {
            let seq = p.next_seq(Instant(k)).unwrap();
            assert_eq!(u64::from(seq), (k + 1) % 65_536);
            p.on_reply(Instant(k + 1), seq, "10.0.1.3", 64, 64);
        }
        assert_eq!(p.received(), 70_000);
        assert!(p.stdout.iter().any(|l| l.contains("icmp_seq=0 ")));
        assert!(!p.stdout.iter().any(|l| l.contains("DUP")));
    }

    #[test]
    fn statistics_count_replies_and_loss() {
        let ip = Ipv4Addr::new(10, 0, 1, 3);
        let options = PingOptions {
            count: 2,
            ..Default::default()
        };
        let mut p = Ping::new(PingId(0), ContainerId(0), "c2", ip, options, Instant(0));
        assert_eq!(p.next_seq(Instant(0)), Some(1));
        assert!(!p.on_reply(Instant(4_000_000), 1, "10.0.1.3", 64, 64));
        assert_eq!(p.next_seq(Instant(1_000_000_000)), Some(2));
        p.finish(Instant(11_000_000_000));
        let out = p.stdout.join("\n");
        assert!(
            out.contains("2 packets transmitted, 1 received, 50% packet loss, time 1000ms"),
            "{out}"
        );
        assert!(
            out.contains("rtt min/avg/max/mdev = 4.000/4.000/4.000/0.000 ms"),
            "{out}"
        );
        assert_eq!(p.exit_code(), 0);
    }
}
