//! The overlay path allocates nothing per frame: a counting global allocator watches
//! frames go from a container on one host, through its bridge, the VTEP, the underlay,
//! the remote VTEP and bridge, to a container on another host.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use swarmlab::lab::Lab;
use swarmlab::time::Duration;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only this test's thread is watched: libtest's own threads may allocate meanwhile.
    static WATCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn note_alloc() {
    if WATCHED.with(|w| w.get()) {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 500;

fn run(lab: &mut Lab, argv: &str, host: &str) {
    let h = lab.underlay.by_name(host).unwrap();
    let argv: Vec<String> = argv.split(' ').map(String::from).collect();
    let out = swarmlab::session::execute(lab, h, &argv);
    assert_eq!(out.exit_code, 0, "{argv:?}: {out:?}");
}

/// A batch of frames from `a` to `b`'s MAC, with an EtherType no stack answers
/// (0x88B5, IEEE's local experimental one), so the receiver only takes them in.
fn batch(lab: &Lab, a: usize, b: usize) -> Vec<Vec<u8>> {
    let (src, dst) = (lab.containers[a].mac.0, lab.containers[b].mac.0);
    (0..BATCH)
        .map(|i| {
            let mut f = Vec::with_capacity(14 + 200);
            f.extend_from_slice(&dst);
            f.extend_from_slice(&src);
            f.extend_from_slice(&[0x88, 0xb5]);
            f.extend((0..200).map(|k| (i + k) as u8));
            f
        })
        .collect()
}

#[test]
fn frames_cross_the_overlay_without_allocating() {
    let mut lab = Lab::new(1);
    let h1 = lab.add_host("h1", "192.168.1.1".parse().unwrap(), 1500);
    let h2 = lab.add_host("h2", "192.168.1.2".parse().unwrap(), 1500);
    let vni = vxlan::Vni::new(4097).unwrap();
    let subnet = swarmlab::lab::Subnet {
        base: "10.0.5.0".parse().unwrap(),
        prefix: 24,
    };
    lab.add_overlay("net", vni, subnet, [h1, h2].into_iter().collect());
    run(
        &mut lab,
        "docker run -d --name a --network net alpine",
        "h1",
    );
    run(
        &mut lab,
        "docker run -d --name b --network net alpine",
        "h2",
    );
    let (a, b) = (0, 1);
    assert!(lab.containers[a].host == h1 && lab.containers[b].host == h2);
    let tunnelled = |lab: &Lab| lab.hosts[h1.0].vtep.counters().encapsulated;
    let received = |lab: &Lab| lab.hosts[h2.0].vtep.counters().decapsulated;
    // Warm up: the event queue and the frame pool grow to the batch's size once.
    for _ in 0..2 {
        for f in batch(&lab, a, b) {
            lab.container_send(swarmlab::lab::ContainerId(a), f);
        }
        let until = lab.now() + Duration::from_secs(1);
        lab.run_until(until);
    }
    let (sent0, got0) = (tunnelled(&lab), received(&lab));
    let frames = batch(&lab, a, b);
    let until = lab.now() + Duration::from_secs(1);
    WATCHED.with(|w| w.set(true));
    for f in frames {
        lab.container_send(swarmlab::lab::ContainerId(a), f);
    }
    // Until the last frame is in b (bridge and veth take 5 µs after the VTEP), and no
    // further: the hosts' gossip members keep their own timers meanwhile.
    lab.run_until_or(until, |lab| received(lab) - got0 == BATCH as u64);
    let last = lab.now() + Duration::from_micros(10);
    lab.run_until(last);
    WATCHED.with(|w| w.set(false));
    let allocs = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        tunnelled(&lab) - sent0,
        BATCH as u64,
        "every frame was tunnelled"
    );
    assert_eq!(
        received(&lab) - got0,
        BATCH as u64,
        "every frame was received"
    );
    assert_eq!(allocs, 0, "{allocs} allocations for {BATCH} frames");
}
