//! The routing mesh's packet path: the NAT of one TCP packet (IPv4 and TCP headers
//! rewritten, both checksums recomputed), for 0, 512 and 1410 bytes of payload; and a
//! whole HTTP request through a node's mesh in the simulator (client stack, conntrack,
//! DNAT + SNAT, VXLAN to the task, whoami's reply, and back).
//!
//! Run: `cargo bench -p swarmlab-benches --bench mesh`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::PacketBuilder;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

fn tcp_packet(payload: usize) -> Vec<u8> {
    let data = vec![0x61u8; payload];
    let builder = PacketBuilder::ipv4([10, 10, 0, 1], [10, 10, 0, 1], 64)
        .tcp(40000, 8080, 1000, 65535)
        .ack(1);
    let mut out = Vec::with_capacity(builder.size(data.len()));
    builder.write(&mut out, &data).expect("a valid packet");
    out
}

fn nat(c: &mut Criterion) {
    let mut g = c.benchmark_group("mesh-nat");
    let sbox = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
    let task = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 80);
    for size in [0usize, 512, 1410] {
        let p = tcp_packet(size);
        g.throughput(Throughput::Bytes(p.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &p, |b, p| {
            b.iter(|| swarmlab::mesh::rewrite(black_box(p), sbox, task))
        });
    }
    g.finish();
}

const SWARM: &str = "
hosts m[1-2] 10.10.0.0/24
hosts w[1-2] 10.10.1.0/24
m1$ docker swarm init
m1$ W=$(docker swarm join-token -q worker)
m2$ docker swarm join --token $W 10.10.0.1:2377
w1$ docker swarm join --token $W 10.10.0.1:2377
w2$ docker swarm join --token $W 10.10.0.1:2377
m1$ docker service create -d --name web --replicas 2 --publish 8080:80 --constraint node.role==worker traefik/whoami
expect service web running 2 within 10s
expect http m1:8080 ok within 5s
";

fn request(c: &mut Criterion) {
    let s = swarmlab::scenario::parse("bench.lab", SWARM).expect("valid");
    let o = swarmlab::scenario::run::run(&s, 1, false);
    assert_eq!(o.failed, 0, "{}", o.timeline);
    let mut lab = o.lab;
    let m1 = lab.underlay.by_name("m1").expect("declared");
    let argv: Vec<String> = "curl -s http://m1:8080/"
        .split(' ')
        .map(String::from)
        .collect();
    // Each request leaves its port in TIME-WAIT for 60 virtual seconds, as on Linux: every
    // 20,000 requests the clock moves on (untimed) so that ports come free again.
    let mut done = 0u64;
    c.bench_function(
        "mesh-http-request (simulated, wall time per request)",
        |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    if done % 20_000 == 19_999 {
                        let later = lab.now() + swarmlab::time::Duration::from_secs(61);
                        lab.run_until(later);
                    }
                    let start = std::time::Instant::now();
                    let out = swarmlab::session::execute(&mut lab, m1, &argv);
                    spent += start.elapsed();
                    assert_eq!(out.exit_code, 0, "{out:?}");
                    done += 1;
                }
                spent
            })
        },
    );
}

criterion_group!(benches, nat, request);
criterion_main!(benches);
