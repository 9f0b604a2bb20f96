//! Per-thread recycling of small value boxes.
//!
//! Every write boxes its new value, and every commit retires the value it replaces. Left to
//! the global allocator, that is a `malloc` per write and a `free` per retired value, and the
//! frees come in batches from the epoch collector, which overflows glibc's per-thread cache
//! and sends both into its slow paths (measured: ~340 instructions per write). Instead, small
//! boxes (up to 64 bytes, alignment up to 16) come from, and return to, a bounded per-thread
//! free list per size class; bigger values use the global allocator directly.
//!
//! A block freed on one thread may be reused by another: the lists hold raw memory, not
//! typed values, and a block is always allocated and freed with its class's layout.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

const CLASS_SIZE: usize = 16;
const CLASSES: usize = 4;
/// Blocks kept per class. A thread's retired values come back to it a grace period's worth
/// at a time (see `reclaim::Garbage`), often thousands at once: the list must hold such a
/// burst, or the excess goes back to the allocator only to be allocated again.
const KEEP: usize = 16384;

#[inline]
const fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() == 0 || layout.size() > CLASS_SIZE * CLASSES || layout.align() > CLASS_SIZE {
        None
    } else {
        Some((layout.size() - 1) / CLASS_SIZE)
    }
}

#[inline]
fn class_layout(class: usize) -> Layout {
    match Layout::from_size_align((class + 1) * CLASS_SIZE, CLASS_SIZE) {
        Ok(l) => l,
        Err(_) => unreachable!("class layouts are valid"),
    }
}

/// The calling thread's free lists.
#[derive(Default)]
struct Pool {
    free: [Vec<NonNull<u8>>; CLASSES],
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (class, list) in self.free.iter_mut().enumerate() {
            for p in list.drain(..) {
                // SAFETY: every block in list `class` was allocated with `class_layout(class)`
                // and is owned by the list (INV-RECYCLE).
                unsafe { dealloc(p.as_ptr(), class_layout(class)) };
            }
        }
    }
}

crate::sync::thread_local_state! {
    static POOL: UnsafeCell<Pool> = UnsafeCell::new(Pool::default());
}

/// Moves `value` into a box from the pool (or the allocator) and returns it.
#[inline]
pub(crate) fn boxed<T>(value: T) -> *mut T {
    let Some(class) = class_of(Layout::new::<T>()) else {
        return Box::into_raw(Box::new(value));
    };
    let reused = POOL
        .try_with(|pool| {
            // SAFETY: the pool is only touched inside these short closures, which call no
            // code that could reach it again (INV-RECYCLE).
            unsafe { &mut *pool.get() }.free[class].pop()
        })
        .ok()
        .flatten();
    let ptr = match reused {
        Some(p) => p.as_ptr(),
        None => {
            let layout = class_layout(class);
            // SAFETY: class layouts have a non-zero size.
            let p = unsafe { alloc(layout) };
            if p.is_null() {
                handle_alloc_error(layout);
            }
            p
        }
    };
    let ptr = ptr.cast::<T>();
    // SAFETY: `ptr` is a block of at least `size_of::<T>()` bytes aligned to 16 >= align_of T
    // (`class_of`), owned by us and uninitialized.
    unsafe { ptr.write(value) };
    ptr
}

/// Drops the value in a box made by [`boxed`] and recycles the box.
///
/// # Safety
///
/// `ptr` came from `boxed::<T>`, holds a live `T`, and nobody else uses it (now or later).
#[inline]
pub(crate) unsafe fn drop_boxed<T>(ptr: *mut T) {
    let Some(class) = class_of(Layout::new::<T>()) else {
        // SAFETY: per the contract, `ptr` came from `Box::into_raw` in `boxed` (big class).
        drop(unsafe { Box::from_raw(ptr) });
        return;
    };
    // SAFETY: per the contract, `ptr` holds a live `T` that nobody else uses.
    unsafe { ptr::drop_in_place(ptr) };
    let block = ptr.cast::<u8>();
    let kept = POOL
        .try_with(|pool| {
            // SAFETY: as in `boxed`; `drop_in_place` above ran before we borrowed the pool, so
            // a destructor that writes TVars cannot reach it re-entrantly (INV-RECYCLE).
            let list = &mut unsafe { &mut *pool.get() }.free[class];
            if list.len() < KEEP {
                // SAFETY: `ptr` is non-null (it came from `boxed`).
                list.push(unsafe { NonNull::new_unchecked(block) });
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: `block` was allocated with `class_layout(class)` (INV-RECYCLE).
        unsafe { dealloc(block, class_layout(class)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class_of(Layout::new::<u8>()), Some(0));
        assert_eq!(class_of(Layout::new::<u64>()), Some(0));
        assert_eq!(class_of(Layout::new::<[u64; 2]>()), Some(0));
        assert_eq!(class_of(Layout::new::<[u64; 3]>()), Some(1));
        assert_eq!(class_of(Layout::new::<[u64; 8]>()), Some(3));
        assert_eq!(class_of(Layout::new::<[u64; 9]>()), None);
        assert_eq!(class_of(Layout::new::<()>()), None);
    }

    #[test]
    fn round_trip_reuses_and_drops() {
        use std::rc::Rc;
        let counter = Rc::new(());
        let p = boxed((Rc::clone(&counter), 7_u32));
        assert_eq!(Rc::strong_count(&counter), 2);
        // SAFETY: `p` came from `boxed` and is used by nobody else.
        unsafe { drop_boxed(p) };
        assert_eq!(Rc::strong_count(&counter), 1);
        let q = boxed((Rc::clone(&counter), 8_u32));
        // SAFETY: as above.
        assert_eq!(unsafe { (*q).1 }, 8);
        // SAFETY: as above.
        unsafe { drop_boxed(q) };
        let big = boxed([1_u64; 32]);
        // SAFETY: as above.
        unsafe { drop_boxed(big) };
    }
}
