//! The outer UDP source port, chosen from a hash of the inner flow.
//!
//! RFC 7348 §5 recommends a source port hashed from the inner headers so that underlay
//! ECMP and RSS spread tunnels by flow, within the dynamic range 49152-65535. Linux scales
//! a 32-bit flow hash into the range as `((hash * span) >> 32) + min`; we do the same
//! with our own hash of the inner Ethernet addresses, the IPv4 addresses and protocol, and
//! the first four bytes of a TCP or UDP header (the ports).

/// Lowest source port used (RFC 7348 §5).
pub const PORT_MIN: u16 = 49152;
/// Highest source port used.
pub const PORT_MAX: u16 = 65535;

const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline]
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(K).rotate_left(29)
}

#[inline]
fn read_u64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    let n = b.len().min(8);
    x[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(x)
}

/// A 32-bit hash of the flow an inner Ethernet frame belongs to. Frames of the same
/// flow hash alike in both the simulator and a live run; it never panics on short input.
pub fn flow_hash(inner: &[u8]) -> u32 {
    // Fast path: an untagged IPv4 frame with a 20-byte header and room for the ports.
    if let Some(head) = inner.get(..38) {
        if head[12] == 0x08 && head[13] == 0x00 && head[14] == 0x45 {
            let w = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or([0; 8]));
            let proto = u64::from(head[23]);
            let ports = if proto == 6 || proto == 17 {
                u64::from(u32::from_le_bytes([head[34], head[35], head[36], head[37]]))
            } else {
                0
            };
            // Two independent multiply lanes, folded once: short dependency chains.
            let l2 = (w(0) ^ (w(6) >> 16).rotate_left(23)).wrapping_mul(K);
            let l3 =
                (w(26) ^ (proto | ports << 8).rotate_left(41)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
            let h = (l2 ^ l3.rotate_left(31)).wrapping_mul(K);
            return (h ^ (h >> 32)) as u32;
        }
    }
    let mut h = mix(0, read_u64(inner.get(..12).unwrap_or(inner)));
    h = mix(h, read_u64(inner.get(8..14).unwrap_or(&[])));
    if inner.get(12..14) == Some(&[0x08, 0x00]) {
        if let Some(ip) = inner.get(14..34) {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let proto = ip[9];
            h = mix(h, read_u64(&ip[12..20]));
            h = mix(h, u64::from(proto));
            if proto == 6 || proto == 17 {
                if let Some(ports) = inner.get(14 + ihl..14 + ihl + 4) {
                    h = mix(h, read_u64(ports));
                }
            }
        }
    }
    (h ^ (h >> 32)) as u32
}

/// The outer UDP source port for an inner frame.
#[inline]
pub fn source_port(inner: &[u8]) -> u16 {
    let span = u64::from(PORT_MAX - PORT_MIN) + 1;
    PORT_MIN + ((u64::from(flow_hash(inner)) * span) >> 32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 1, 2]);
        f[30..34].copy_from_slice(&[10, 0, 1, 3]);
        f[34..36].copy_from_slice(&src_port.to_be_bytes());
        f
    }

    #[test]
    fn same_flow_same_port_and_ports_spread_over_flows() {
        assert_eq!(source_port(&frame(1000)), source_port(&frame(1000)));
        let ports: std::collections::BTreeSet<u16> =
            (0..64).map(|p| source_port(&frame(1000 + p))).collect();
        assert!(
            ports.len() > 50,
            "only {} distinct ports for 64 flows",
            ports.len()
        );
        assert!(ports.iter().all(|p| *p >= PORT_MIN));
    }

    #[test]
    fn short_frames_do_not_panic() {
        for n in 0..40 {
            let _ = source_port(&frame(7)[..n]);
        }
    }
}
