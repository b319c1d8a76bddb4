//! A counting wrapper around the system allocator, so the training benchmark can report what each
//! step allocates.

// (The session recycles tensor buffers itself, so the allocator's
// policy no longer shows in step times; see BENCHMARKS.md.)
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

static ALLOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ALLOCATED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The system allocator, counting every allocation and reallocation with its size.
pub struct CountingAlloc;

// SAFETY: forwards every call unchanged to the system allocator; the counters have no effect
// on memory.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size());
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size());
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    ALLOCATIONS.fetch_add(1, Relaxed);
    ALLOCATED_BYTES.fetch_add(bytes as u64, Relaxed);
}

/// Allocations and bytes allocated since the program started.
pub fn allocations() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed))
}
