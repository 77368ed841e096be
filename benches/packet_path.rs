//! The VXLAN packet path: encapsulation, decapsulation, and encap + FDB lookup + decap,
//! for inner frames of 64, 512 and 1450 bytes, against a naive baseline that builds the
//! same outer packet into a fresh Vec with etherparse's `PacketBuilder`.
//!
//! Run: `cargo bench -p swarmlab-benches --bench packet_path`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::PacketBuilder;
use std::hint::black_box;
use std::net::Ipv4Addr;
use vxlan::{Config, Forward, MacAddr, Vni, Vtep, OUTER_LEN};

const SIZES: [usize; 3] = [64, 512, 1450];
const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 12);
const A_MAC: MacAddr = MacAddr([2, 0, 192, 168, 1, 11]);
const B_MAC: MacAddr = MacAddr([2, 0, 192, 168, 1, 12]);
const C1: MacAddr = MacAddr([2, 0x42, 10, 0, 1, 2]);
const C2: MacAddr = MacAddr([2, 0x42, 10, 0, 1, 3]);

fn vni() -> Vni {
    Vni::new(4097).unwrap()
}

fn vteps() -> (Vtep, Vtep) {
    let mut a = Vtep::new(Config::docker(A_IP, A_MAC));
    let mut b = Vtep::new(Config::docker(B_IP, B_MAC));
    for v in [&mut a, &mut b] {
        v.add_network(vni());
        v.set_neighbor(A_IP, A_MAC);
        v.set_neighbor(B_IP, B_MAC);
        // A realistic table: 256 peers, so lookups are not in a one-entry map.
        for i in 0..=255u8 {
            let ip = Ipv4Addr::new(192, 168, 2, i);
            v.set_neighbor(ip, MacAddr([2, 0, 192, 168, 2, i]));
            v.add_fdb(vni(), MacAddr([2, 0x42, 10, 0, 2, i]), ip)
                .unwrap();
        }
    }
    a.add_fdb(vni(), C2, B_IP).unwrap();
    b.add_fdb(vni(), C1, A_IP).unwrap();
    (a, b)
}

/// An inner Ethernet frame of `len` bytes, c1 -> c2, IPv4/UDP.
fn inner(len: usize) -> Vec<u8> {
    let payload = vec![0x5a; len - 14 - 20 - 8];
    let mut out = Vec::with_capacity(len);
    PacketBuilder::ethernet2(C1.0, C2.0)
        .ipv4([10, 0, 1, 2], [10, 0, 1, 3], 64)
        .udp(40000, 8080)
        .write(&mut out, &payload)
        .unwrap();
    out
}

fn with_headroom(frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; OUTER_LEN];
    buf.extend_from_slice(frame);
    buf
}

/// Packets per measured iteration. A driver hands the data plane bursts (a socket's
/// recvmmsg, a GRO batch); measuring bursts also keeps criterion's per-iteration cost out
/// of a figure this small. Criterion's time is per burst; divide by `BURST` (or read the
/// Melem/s) for one packet.
const BURST: usize = 32;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("vxlan");
    group.throughput(Throughput::Elements(BURST as u64));
    for size in SIZES {
        let frame = inner(size);

        let (mut a, _) = vteps();
        let mut bufs: Vec<Vec<u8>> = (0..BURST).map(|_| with_headroom(&frame)).collect();
        group.bench_with_input(BenchmarkId::new("encap", size), &size, |bencher, &n| {
            bencher.iter(|| {
                for buf in bufs.iter_mut() {
                    let e = a.encapsulate_to(vni(), B_IP, black_box(buf), OUTER_LEN, n);
                    black_box(e.unwrap());
                }
            })
        });

        let (mut a, mut b) = vteps();
        let outers: Vec<Vec<u8>> = (0..BURST)
            .map(|_| {
                let mut buf = with_headroom(&frame);
                let e = a
                    .encapsulate_to(vni(), B_IP, &mut buf, OUTER_LEN, size)
                    .unwrap();
                buf[e.range()].to_vec()
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("decap", size), &size, |bencher, _| {
            bencher.iter(|| {
                for outer in &outers {
                    black_box(b.decapsulate(black_box(outer)).unwrap().inner.len());
                }
            })
        });

        let (mut a, mut b) = vteps();
        let mut bufs: Vec<Vec<u8>> = (0..BURST).map(|_| with_headroom(&frame)).collect();
        group.bench_with_input(
            BenchmarkId::new("encap+fdb+decap", size),
            &size,
            |bencher, &n| {
                bencher.iter(|| {
                    for buf in bufs.iter_mut() {
                        let Ok(Forward::Unicast(e)) =
                            a.encapsulate(vni(), black_box(buf), OUTER_LEN, n)
                        else {
                            unreachable!()
                        };
                        black_box(b.decapsulate(&buf[e.range()]).unwrap().inner.len());
                    }
                })
            },
        );

        group.bench_with_input(
            BenchmarkId::new("naive-encap", size),
            &frame,
            |bencher, f| {
                bencher.iter(|| {
                    for _ in 0..BURST {
                        let mut payload = Vec::with_capacity(8 + f.len());
                        payload.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x10, 0x01, 0]);
                        payload.extend_from_slice(black_box(f));
                        let builder = PacketBuilder::ethernet2(A_MAC.0, B_MAC.0)
                            .ipv4(A_IP.octets(), B_IP.octets(), 64)
                            .udp(vxlan::flow::source_port(f), 4789);
                        let mut out = Vec::with_capacity(builder.size(payload.len()));
                        builder.write(&mut out, &payload).unwrap();
                        black_box(out);
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
