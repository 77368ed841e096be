//! The packet path allocates nothing: a counting global allocator watches encap, FDB
//! lookup and decap of many frames.

mod common;
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use vxlan::{Forward, OUTER_LEN};

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

#[test]
fn packet_path_makes_zero_heap_allocations() {
    let (mut a, mut b) = pair();
    let frames: Vec<Vec<u8>> = [64, 512, 1450]
        .iter()
        .map(|n| with_headroom(&echo_frame(*n)))
        .collect();
    let mut bufs = frames.clone();
    // The watch works: one allocation on this thread is seen.
    WATCHED.with(|w| w.set(true));
    let probe = ALLOCS.load(Ordering::SeqCst);
    drop(std::hint::black_box(Box::new(1u64)));
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        probe + 1,
        "counting allocator is blind"
    );
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut delivered = 0usize;
    for i in 0..3000 {
        let buf = &mut bufs[i % 3];
        let len = buf.len() - OUTER_LEN;
        let Ok(Forward::Unicast(e)) = a.encapsulate(vni(), buf, OUTER_LEN, len) else {
            panic!("encap failed")
        };
        let d = b.decapsulate(&buf[e.range()]).expect("decap failed");
        delivered += d.inner.len();
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    WATCHED.with(|w| w.set(false));
    assert_eq!(
        after - before,
        0,
        "packet path allocated {} times",
        after - before
    );
    assert_eq!(delivered, 1000 * (64 + 512 + 1450));
}
