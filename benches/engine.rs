//! The engine alone: timer and delivery events through the (time, sequence) queue.
//!
//! Each iteration runs a small network of 64 "hosts" that keep 256 events in flight:
//! every event handled schedules a delivery to another host after a pseudo-random
//! latency, or re-arms a timer, the way the lab's packets and ping timers do.
//!
//! Run: `cargo bench -p swarmlab-benches --bench engine`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use swarmlab::engine::{Engine, Rng};
use swarmlab::time::{Duration, Instant};

#[derive(Debug)]
enum Ev {
    Timer { host: u32 },
    Deliver { to: u32, bytes: u32 },
}

const EVENTS: u64 = 100_000;

fn run(events: u64) -> u64 {
    let mut engine: Engine<Ev> = Engine::new();
    let mut rng = Rng::new(42);
    for h in 0..256u32 {
        if h % 2 == 0 {
            engine.schedule(Instant(u64::from(h) * 1000), Ev::Timer { host: h % 64 });
        } else {
            engine.schedule(
                Instant(u64::from(h) * 1000),
                Ev::Deliver {
                    to: h % 64,
                    bytes: 98,
                },
            );
        }
    }
    let mut delivered = 0u64;
    let horizon = Instant(u64::MAX);
    for _ in 0..events {
        let Some((_, ev)) = engine.pop_until(horizon) else {
            break;
        };
        match ev {
            Ev::Timer { host } => {
                engine.schedule_in(Duration::from_millis(1), Ev::Timer { host });
            }
            Ev::Deliver { to, bytes } => {
                delivered += u64::from(bytes);
                let next = (to + 1 + rng.below(63) as u32) % 64;
                let latency = Duration(100_000 + rng.below(20_000));
                engine.schedule_in(latency, Ev::Deliver { to: next, bytes });
            }
        }
    }
    delivered + engine.processed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(EVENTS));
    g.bench_function("timer+delivery events", |b| {
        b.iter(|| black_box(run(black_box(EVENTS))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
