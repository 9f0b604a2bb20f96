//! Per-thread recycling of small value boxes.
//!
//! Every write of a value that is not kept inline (`inline.rs`) boxes it, and every commit
//! retires the value it replaces. Left to the global allocator, that is a `malloc` per write
//! and a `free` per retired value, and the frees come in batches from the epoch collector,
//! which overflows glibc's per-thread cache and sends both into its slow paths (measured:
//! ~340 instructions per write). Instead, boxes of up to 1 KiB (alignment up to 16) come
//! from, and return to, a bounded per-thread free list per size class: 16-byte steps up to
//! 64 bytes (small values), then 64-byte steps up to 1 KiB (a `TMap` bucket holds 16
//! entries inline, a 312-byte slot for `u64` keys and values). Bigger values use the global
//! allocator directly.
//!
//! A block freed on one thread may be reused by another: the lists hold raw memory, not
//! typed values, and a block is always allocated and freed with its class's layout.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

/// The step between small classes, and the alignment of every block.
const SMALL_STEP: usize = 16;
/// Small classes: 16, 32, 48 and 64 bytes.
const SMALL_CLASSES: usize = 4;
/// The step between large classes: 128, 192, ... `LARGEST` bytes.
const LARGE_STEP: usize = 64;
/// The biggest block recycled.
const LARGEST: usize = 1024;
const CLASSES: usize = SMALL_CLASSES + (LARGEST - SMALL_STEP * SMALL_CLASSES) / LARGE_STEP;
/// Blocks kept per small class. A thread's retired values come back to it a grace period's
/// worth at a time (see `reclaim::Garbage`), often thousands at once: the list must hold
/// such a burst, or the excess goes back to the allocator only to be allocated again.
const KEEP: usize = 16384;
/// Bytes kept per large class (between 1024 and 8192 blocks): enough for a grace period's
/// burst of `TMap` buckets (about a thousand, measured), and at most 1 MiB per class a
/// thread's writes actually use.
const KEEP_LARGE_BYTES: usize = 1024 * 1024;

#[inline]
const fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if size == 0 || size > LARGEST || layout.align() > SMALL_STEP {
        None
    } else if size <= SMALL_STEP * SMALL_CLASSES {
        Some((size - 1) / SMALL_STEP)
    } else {
        Some(SMALL_CLASSES + (size - SMALL_STEP * SMALL_CLASSES - 1) / LARGE_STEP)
    }
}

/// The block size of `class`.
#[inline]
const fn class_size(class: usize) -> usize {
    if class < SMALL_CLASSES {
        (class + 1) * SMALL_STEP
    } else {
        SMALL_STEP * SMALL_CLASSES + (class + 1 - SMALL_CLASSES) * LARGE_STEP
    }
}

/// How many free blocks of `class` a thread keeps.
#[inline]
const fn keep(class: usize) -> usize {
    if class < SMALL_CLASSES {
        KEEP
    } else {
        KEEP_LARGE_BYTES / class_size(class)
    }
}

#[inline]
fn class_layout(class: usize) -> Layout {
    match Layout::from_size_align(class_size(class), SMALL_STEP) {
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

/// How a value box made by [`boxed`] is given back, whatever its type: a type without drop
/// glue in a size class only returns its block to the free list (no indirect call, and a
/// whole batch of them with one borrow of the pool); any other runs `drop_boxed::<T>`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Disposal {
    /// Nothing to drop: the block goes back to this class's free list.
    Block(usize),
    /// `drop_boxed::<T>` for the value's `T`.
    Drop(unsafe fn(*mut ())),
    /// Not a box: an inline value's word (`inline.rs`), with nothing to free.
    Inline,
}

impl Disposal {
    /// The disposal of boxes made by `boxed::<T>`.
    #[inline(always)]
    pub(crate) fn of<T>() -> Self {
        match class_of(Layout::new::<T>()) {
            Some(class) if !std::mem::needs_drop::<T>() => Disposal::Block(class),
            _ => Disposal::Drop(drop_erased::<T>),
        }
    }

    /// Drops the value in `ptr` (if it has drop glue) and recycles or frees its box; does
    /// nothing for an inline word.
    ///
    /// # Safety
    ///
    /// Unless the disposal is `Inline`: `ptr` came from `boxed::<T>` for the `T` this
    /// disposal was made for (`Disposal::of::<T>`), holds a live `T`, and nobody else uses it
    /// (now or later).
    #[inline]
    pub(crate) unsafe fn dispose(self, ptr: *mut ()) {
        match self {
            Disposal::Block(class) => {
                // SAFETY: per the contract, `ptr` is a block of `class` (INV-RECYCLE) whose
                // value needs no drop, owned by us.
                unsafe { free_blocks(class, std::iter::once(ptr)) };
            }
            // SAFETY: per the contract, `f` is `drop_erased::<T>` for the box's `T`.
            Disposal::Drop(f) => unsafe { f(ptr) },
            Disposal::Inline => {}
        }
    }
}

/// `drop_boxed` behind a type-erased pointer.
///
/// # Safety
///
/// As `drop_boxed::<T>`.
unsafe fn drop_erased<T>(ptr: *mut ()) {
    // SAFETY: forwarded contract.
    unsafe { drop_boxed(ptr.cast::<T>()) };
}

/// Gives blocks of `class` back to the free list (or the allocator, past `keep(class)`), with one
/// borrow of the pool for all of them.
///
/// # Safety
///
/// Each pointer is a block of `class` from `boxed`, whose value was dropped or needs no drop,
/// owned by the caller and used by nobody (now or later).
#[inline]
pub(crate) unsafe fn free_blocks(class: usize, blocks: impl ExactSizeIterator<Item = *mut ()>) {
    let mut blocks = blocks.map(|b| {
        // SAFETY: blocks from `boxed` are non-null.
        unsafe { NonNull::new_unchecked(b.cast::<u8>()) }
    });
    let _ = POOL.try_with(|pool| {
        // SAFETY: as in `boxed`: no code that could reach the pool runs while it is borrowed
        // (INV-RECYCLE); the iterator only converts pointers.
        let list = &mut unsafe { &mut *pool.get() }.free[class];
        let room = keep(class).saturating_sub(list.len());
        list.extend(blocks.by_ref().take(room));
    });
    for block in blocks {
        // SAFETY: per the contract, allocated with `class_layout(class)` (INV-RECYCLE).
        unsafe { dealloc(block.as_ptr(), class_layout(class)) };
    }
}

/// Moves `value` into a box from the pool (or the allocator) and returns it.
#[inline(always)]
pub(crate) fn boxed<T>(value: T) -> *mut T {
    boxed_with(|| value)
}

/// A box from the pool (or the allocator) holding `make()`, called once the box is there: so
/// that the compiler can build the value in the box (a value built before would be copied in,
/// `boxed`'s caller builds its argument first).
#[inline(always)]
pub(crate) fn boxed_with<T>(make: impl FnOnce() -> T) -> *mut T {
    let Some(class) = class_of(Layout::new::<T>()) else {
        return Box::into_raw(Box::new(make()));
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
    /// Gives the block back if `make` unwinds.
    struct Unwind(*mut (), usize);
    impl Drop for Unwind {
        fn drop(&mut self) {
            // SAFETY: the block is of class `self.1` (INV-RECYCLE), ours, and holds no value.
            unsafe { free_blocks(self.1, std::iter::once(self.0)) };
        }
    }
    let unwind = Unwind(ptr.cast(), class);
    let value = make();
    std::mem::forget(unwind);
    let ptr = ptr.cast::<T>();
    // SAFETY: `ptr` is a block of at least `size_of::<T>()` bytes aligned to 16 >= align_of T
    // (`class_of`), owned by us and uninitialized.
    unsafe { ptr.write(value) };
    ptr
}

/// Drops the value in a box made by [`boxed`] or [`boxed_with`] and recycles the box.
///
/// # Safety
///
/// `ptr` came from `boxed::<T>` or `boxed_with::<T>`, holds a live `T`, and nobody else uses
/// it (now or later).
#[inline]
pub(crate) unsafe fn drop_boxed<T>(ptr: *mut T) {
    let Some(class) = class_of(Layout::new::<T>()) else {
        // SAFETY: per the contract, `ptr` came from `Box::into_raw` in `boxed_with` (no size
        // class).
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
            if list.len() < keep(class) {
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

/// Moves the value out of a box made by [`boxed`] or [`boxed_with`] and recycles the box.
///
/// # Safety
///
/// As [`drop_boxed`]; the value is the caller's afterwards.
pub(crate) unsafe fn take_boxed<T>(ptr: *mut T) -> T {
    let Some(class) = class_of(Layout::new::<T>()) else {
        // SAFETY: per the contract, `ptr` came from `Box::into_raw` in `boxed_with` (no
        // size class).
        return *unsafe { Box::from_raw(ptr) };
    };
    // SAFETY: per the contract, `ptr` holds a live `T` that nobody else uses; it is moved out
    // once, and the block freed below without dropping it.
    let value = unsafe { ptr.read() };
    // SAFETY: the block was allocated with `class_layout(class)` (INV-RECYCLE) and holds no
    // live value any more.
    unsafe { free_blocks(class, std::iter::once(ptr.cast::<()>())) };
    value
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
        assert_eq!(class_of(Layout::new::<[u64; 9]>()), Some(4));
        assert_eq!(class_of(Layout::new::<[u64; 16]>()), Some(4));
        assert_eq!(class_of(Layout::new::<[u64; 17]>()), Some(5));
        assert_eq!(class_of(Layout::new::<[u8; 1024]>()), Some(CLASSES - 1));
        assert_eq!(class_of(Layout::new::<[u8; 1025]>()), None);
        assert_eq!(class_of(Layout::new::<()>()), None);
        assert_eq!(class_of(Layout::new::<u128>()), Some(0));
        for class in 0..CLASSES {
            let size = class_size(class);
            assert_eq!(class_of(Layout::from_size_align(size, 8).unwrap()), Some(class));
            assert!(keep(class) >= 256, "class {class} keeps {}", keep(class));
        }
        assert_eq!(class_size(CLASSES - 1), LARGEST);
        // Every layout gets the smallest class that holds it, or none.
        for size in 1..=LARGEST + 64 {
            for align in [1, 2, 4, 8, 16, 32] {
                let class = class_of(Layout::from_size_align(size, align).unwrap());
                if size > LARGEST || align > SMALL_STEP {
                    assert_eq!(class, None, "size {size}, align {align}");
                    continue;
                }
                let class = class.expect("a recycled size");
                assert!(class_size(class) >= size, "size {size} in class {class}");
                assert!(class == 0 || class_size(class - 1) < size, "size {size}: smaller fits");
            }
        }
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
        let big = boxed([1_u64; 200]);
        // SAFETY: as above.
        unsafe { drop_boxed(big) };
    }

    #[test]
    fn disposals_recycle_bare_blocks_and_drop_the_rest() {
        use std::rc::Rc;
        assert!(matches!(Disposal::of::<u64>(), Disposal::Block(0)));
        assert!(matches!(Disposal::of::<[u64; 8]>(), Disposal::Block(3)));
        assert!(matches!(Disposal::of::<[u64; 9]>(), Disposal::Block(4)));
        assert!(matches!(Disposal::of::<[u64; 129]>(), Disposal::Drop(_)));
        assert!(matches!(Disposal::of::<Rc<()>>(), Disposal::Drop(_)));
        let counter = Rc::new(());
        let p = boxed(Rc::clone(&counter));
        // SAFETY: `p` came from `boxed::<Rc<()>>` and is used by nobody else.
        unsafe { Disposal::of::<Rc<()>>().dispose(p.cast()) };
        assert_eq!(Rc::strong_count(&counter), 1);
        // More blocks than the free list keeps: the rest go back to the allocator.
        let blocks: Vec<*mut ()> = (0..KEEP as u64 + 3).map(|i| boxed(i).cast()).collect();
        // SAFETY: blocks of class 0 from `boxed::<u64>`, owned here and used by nobody else.
        unsafe { free_blocks(0, blocks.into_iter()) };
        let q = boxed(7_u64);
        // SAFETY: as above.
        assert_eq!(unsafe { *q }, 7);
        // SAFETY: `q` came from `boxed::<u64>` and is used by nobody else.
        unsafe { Disposal::of::<u64>().dispose(q.cast()) };
    }
}
