//! Configuration profiles, named after the memberlist defaults they copy
//! (`DefaultLANConfig`, `DefaultWANConfig`, `DefaultLocalConfig`).

use crate::security::Keyring;
use std::time::Duration;

/// How a member behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Probe one member every this long (scaled by Lifeguard's awareness).
    pub probe_interval: Duration,
    /// Wait this long for a direct ack before asking others.
    pub probe_timeout: Duration,
    /// How many members relay an indirect ping.
    pub indirect_checks: usize,
    /// Gossip every this long...
    pub gossip_interval: Duration,
    /// ...to this many members...
    pub gossip_nodes: usize,
    /// ...including the dead, for this long after they died.
    pub gossip_to_the_dead: Duration,
    /// Each broadcast is sent `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Suspicion lasts `suspicion_mult * max(1, log10 n) * probe_interval` at least...
    pub suspicion_mult: u32,
    /// ...and this many times that at most.
    pub suspicion_max_timeout_mult: u32,
    /// Full state exchange with one random member every this long (scaled above 32).
    pub push_pull_interval: Duration,
    /// Lifeguard: the awareness score runs from 0 to this minus one.
    pub awareness_max_multiplier: u32,
    /// Largest UDP packet we build.
    pub udp_buffer_size: usize,
    /// Compress outgoing messages (UDP when it helps; streams always).
    pub enable_compression: bool,
    /// Encryption keys; empty means plaintext.
    pub keyring: Keyring,
    /// Dial and read deadline of a stream.
    pub tcp_timeout: Duration,
    /// Cluster label (memberlist 0.3+): sent as `[244][len][label]` in front of every
    /// packet and stream, used as associated data when encrypting, and required on
    /// input. `None` sends no label and refuses labelled input.
    pub label: Option<String>,
}

impl Config {
    /// memberlist's `DefaultLANConfig`.
    pub fn memberlist_lan() -> Config {
        Config {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead: Duration::from_secs(30),
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            awareness_max_multiplier: 8,
            udp_buffer_size: 1400,
            enable_compression: true,
            keyring: Keyring::default(),
            tcp_timeout: Duration::from_secs(10),
            label: None,
        }
    }

    /// memberlist's `DefaultWANConfig`.
    pub fn memberlist_wan() -> Config {
        Config {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead: Duration::from_secs(60),
            ..Config::memberlist_lan()
        }
    }

    /// memberlist's `DefaultLocalConfig`.
    pub fn memberlist_local() -> Config {
        Config {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead: Duration::from_secs(15),
            ..Config::memberlist_lan()
        }
    }

    /// How many times a broadcast is sent among `n` members.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n as f64) + 1.0).log10().ceil() as u32;
        self.retransmit_mult * scale.max(1)
    }

    /// memberlist's `suspicionTimeout`: (min, max) for `n` known members.
    pub fn suspicion_timeout(&self, n: usize) -> (Duration, Duration) {
        let scale = (n.max(1) as f64).log10().max(1.0);
        let ms = (scale * 1000.0) as u64;
        let min = self.probe_interval * self.suspicion_mult * ms as u32 / 1000;
        (min, min * self.suspicion_max_timeout_mult)
    }

    /// memberlist's `pushPullScale`: the interval grows with log2(n) above 32 members.
    pub fn push_pull_scaled(&self, n: usize) -> Duration {
        if n <= 32 {
            return self.push_pull_interval;
        }
        let mult = ((n as f64).log2() - 32f64.log2()).ceil() as u32 + 1;
        self.push_pull_interval * mult
    }
}

/// memberlist's suspicion curve: with `c` of `k` expected independent confirmations,
/// the timeout falls from `max` towards `min` as `max - ln(c+1)/ln(k+1) * (max - min)`,
/// floored to whole milliseconds and never below `min`.
pub fn suspicion_after(min: Duration, max: Duration, k: u32, c: u32) -> Duration {
    if k == 0 {
        return min;
    }
    let frac = f64::from(c + 1).ln() / f64::from(k + 1).ln();
    let span = max.saturating_sub(min).as_secs_f64();
    let ms = ((max.as_secs_f64() - frac * span) * 1000.0)
        .floor()
        .max(0.0) as u64;
    Duration::from_millis(ms).max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_timings_match_memberlist() {
        let c = Config::memberlist_lan();
        assert_eq!(c.retransmit_limit(5), 4);
        assert_eq!(c.retransmit_limit(10), 8);
        assert_eq!(
            c.suspicion_timeout(3),
            (Duration::from_secs(4), Duration::from_secs(24))
        );
        assert_eq!(
            c.suspicion_timeout(100),
            (Duration::from_secs(8), Duration::from_secs(48))
        );
        assert_eq!(c.push_pull_scaled(32), Duration::from_secs(30));
        assert_eq!(c.push_pull_scaled(33), Duration::from_secs(60));
        assert_eq!(c.push_pull_scaled(65), Duration::from_secs(90));
    }

    #[test]
    fn confirmations_follow_memberlists_logarithmic_curve() {
        // n = 5: min 4 s, max 24 s, k = 2 (memberlist's own worked example).
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        assert_eq!(suspicion_after(min, max, 2, 0), max);
        assert_eq!(
            suspicion_after(min, max, 2, 1),
            Duration::from_millis(11_381)
        );
        assert_eq!(suspicion_after(min, max, 2, 2), min);
        assert_eq!(suspicion_after(min, max, 0, 0), min);
    }
}
