//! Counting heap allocations, for `portier bench` and the allocation tests.
//!
//! [`CountingAlloc`] wraps the system allocator. It counts only on threads that asked for it
//! (inside [`count`]); everywhere else its whole cost is one thread-local flag test per
//! allocation, because the flag and the counter are plain thread-locals (no atomics, no
//! contention between the server's worker threads). The allocation tests install it in their
//! own binary; the `portier` binary installs it only with the `alloc-count` feature (off by
//! default, on in test builds), for `portier bench`. BENCHMARKS.md states its measured cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting allocations on threads inside [`count`].
pub struct CountingAlloc;

thread_local! {
    // Const-initialised and without a destructor: reading them never allocates nor fails, which
    // an allocator requires.
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

#[inline(always)]
fn note() {
    if ENABLED.get() {
        ALLOCATIONS.set(ALLOCATIONS.get() + 1);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only thread-locals
// that need no allocation.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the number of heap allocations (`alloc`, `alloc_zeroed`
/// and `realloc` calls) it made on this thread. Always 0 unless [`CountingAlloc`] is the global
/// allocator: see [`installed`].
pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.get();
    let was = ENABLED.replace(true);
    let result = f();
    ENABLED.set(was);
    (result, ALLOCATIONS.get() - before)
}

/// Whether [`CountingAlloc`] is this program's global allocator (so [`count`] means something).
pub fn installed() -> bool {
    let (_, n) = count(|| std::hint::black_box(Box::new(0u64)));
    n > 0
}
