//! Buffers of values a repeated evaluation no longer needs, handed to the next kernel that
//! allocates one of about their size. A CNN's activations come in a few sizes that recur
//! layer after layer and run after run; without reuse each output is fresh memory that the
//! system zero-fills page by page (a tenth of MobileNetV2's time went to page faults), and
//! each freed one goes back to the system.
//!
//! A [`Pool`] belongs to the [`Constants`](super::Constants) of a model run many times and
//! keeps at most [`MAX_BUFFERS`] ([`MAX_BYTES`]) between runs. During a run ([`scope`]) its buffers are held
//! on the run's budget (those it has no room for are freed); a kernel that takes one gets it
//! trimmed to the size it asked for, so the value it becomes is charged what it occupies.
//! A buffer from [`take`] is empty; one from [`overwritten`], for a kernel that writes every
//! element of its output, keeps what it held (plain values only), so that nothing fills it
//! first. A single evaluation has no pool: keeping its freed buffers would only stop the
//! allocator from reusing them.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

use crate::budget::{self, Charge};
use crate::tensor::{Data, Tensor};

/// Buffers below this size come from the allocator's own free lists cheaply.
const MIN_BYTES: usize = 64 * 1024;
/// How many buffers, and how many bytes, a pool keeps at most (the smallest goes first): a
/// CNN's activations at batch 1 fit; a network of ever-growing sizes (DenseNet's
/// concatenations) keeps its largest without holding a copy of every activation.
const MAX_BUFFERS: usize = 32;
const MAX_BYTES: usize = 32 << 20;

struct Pooled {
    bytes: usize,
    buffer: Box<dyn Any + Send>,
    _charge: Charge,
}

/// Buffers kept between the runs of one model.
#[derive(Default)]
pub struct Pool(Mutex<Vec<Pooled>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pooled = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: usize = pooled.iter().map(|p| p.bytes).sum();
        write!(f, "Pool({} buffers, {bytes} bytes)", pooled.len())
    }
}

thread_local! {
    static ACTIVE: RefCell<Option<Vec<Pooled>>> = const { RefCell::new(None) };
}

/// Runs `f` with `pool`'s buffers available to the kernels on this thread, held on the
/// current budget, and returns them (with those freed during `f`) to the pool afterwards.
/// Without a pool, or inside a run that already has one, `f` just runs.
pub fn scope<R>(pool: Option<&Pool>, f: impl FnOnce() -> R) -> R {
    let Some(pool) = pool else {
        return f();
    };
    if ACTIVE.with(|active| active.borrow().is_some()) {
        return f();
    }
    let kept = std::mem::take(&mut *pool.0.lock().unwrap_or_else(PoisonError::into_inner));
    let mut buffers = Vec::with_capacity(kept.len());
    for mut entry in kept {
        // Counted on this run's budget, or freed when it has no room.
        drop(std::mem::replace(&mut entry._charge, Charge::none()));
        if let Some(charge) = budget::hold_if_room(entry.bytes as u64) {
            entry._charge = charge;
            buffers.push(entry);
        }
    }
    ACTIVE.with(|active| *active.borrow_mut() = Some(buffers));
    struct End<'p>(&'p Pool);
    impl Drop for End<'_> {
        fn drop(&mut self) {
            let mut buffers = ACTIVE
                .with(|active| active.borrow_mut().take())
                .unwrap_or_default();
            // Between runs they are the pool owner's memory, on no run's budget.
            for entry in &mut buffers {
                drop(std::mem::replace(&mut entry._charge, Charge::none()));
            }
            *self.0 .0.lock().unwrap_or_else(PoisonError::into_inner) = buffers;
        }
    }
    let _end = End(pool);
    f()
}

/// Keeps `buffer`'s memory for a later [`take`], if a pool is active, the buffer is large
/// enough to be worth it and the budget has room.
pub fn give<T: Send + 'static>(mut buffer: Vec<T>) {
    let bytes = buffer.capacity().saturating_mul(std::mem::size_of::<T>());
    if bytes < MIN_BYTES {
        return;
    }
    let active = ACTIVE.with(|pool| pool.borrow().is_some());
    if !active {
        return;
    }
    let Some(charge) = budget::hold_if_room(bytes as u64) else {
        return;
    };
    // Elements with destructors (strings) are dropped now, not when the memory is reused;
    // plain values stay, for `overwritten`.
    if std::mem::needs_drop::<T>() {
        buffer.clear();
    }
    let evicted = ACTIVE.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pool = pool.as_mut()?;
        pool.push(Pooled {
            bytes,
            buffer: Box::new(buffer),
            _charge: charge,
        });
        let mut evicted = Vec::new();
        while pool.len() > MAX_BUFFERS || pool.iter().map(|p| p.bytes).sum::<usize>() > MAX_BYTES {
            let smallest = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.bytes)
                .map(|(i, _)| i)?;
            evicted.push(pool.swap_remove(smallest));
        }
        Some(evicted)
    });
    drop(evicted);
}

/// The buffers of a tensor nothing refers to any more (see [`give`]).
pub fn give_tensor(tensor: Tensor) {
    match tensor.into_data() {
        Data::F32(a) => give(a.into_raw_vec_and_offset().0),
        Data::F64(a) => give(a.into_raw_vec_and_offset().0),
        _ => {}
    }
}

/// An empty vector with room for `len` elements: a pooled buffer of at most a quarter more
/// when there is one, trimmed to `len` (a far larger one, trimmed, would lose what the next
/// request of its own size needs), else a new allocation.
pub fn take<T: 'static>(len: usize) -> Vec<T> {
    match pooled::<T>(len) {
        Some(mut buffer) => {
            buffer.clear();
            buffer.shrink_to(len);
            buffer
        }
        None => Vec::with_capacity(len),
    }
}

/// `len` elements for a kernel that overwrites every one of them: a pooled buffer (as
/// [`take`] finds one) keeps the values it held, with only what it lacks set to `value`; a new
/// one is all `value`. Zero-filling each output before a kernel wrote it was a tenth of
/// EfficientNet-B0's time, on one thread.
pub fn overwritten<T: Clone + 'static>(len: usize, value: T) -> Vec<T> {
    let mut buffer = match pooled::<T>(len) {
        Some(mut buffer) => {
            buffer.truncate(len);
            buffer.shrink_to(len);
            buffer
        }
        None => Vec::with_capacity(len),
    };
    buffer.resize(len, value);
    buffer
}

/// The pooled buffer [`take`] and [`overwritten`] hand out for `len` elements, as it was given.
fn pooled<T: 'static>(len: usize) -> Option<Vec<T>> {
    let wanted = len.saturating_mul(std::mem::size_of::<T>());
    if wanted < MIN_BYTES {
        return None;
    }
    let found = ACTIVE.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pool = pool.as_mut()?;
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.bytes >= wanted && p.bytes / 5 * 4 <= wanted && p.buffer.is::<Vec<T>>()
            })
            .min_by_key(|(_, p)| p.bytes)
            .map(|(i, _)| i)?;
        Some(pool.swap_remove(best))
    })?;
    found.buffer.downcast::<Vec<T>>().ok().map(|buffer| *buffer)
}

/// `f` of every element of `a`, in a buffer from [`take`] when `a` is laid out row-major.
pub fn map<T, U: 'static>(a: &ndarray::ArrayD<T>, f: impl Fn(T) -> U) -> ndarray::ArrayD<U>
where
    T: Clone,
{
    let Some(elements) = a.as_slice() else {
        return a.mapv(f);
    };
    let mut out = take(elements.len());
    out.extend(elements.iter().map(|v| f(v.clone())));
    // The shape is the input's, whose elements these are: the fallback is never taken.
    ndarray::ArrayD::from_shape_vec(a.raw_dim(), out).unwrap_or_else(|_| a.mapv(&f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many buffers this thread's running pool holds, if one is running.
    fn active() -> Option<usize> {
        ACTIVE.with(|active| active.borrow().as_ref().map(Vec::len))
    }

    fn kept(pool: &Pool) -> usize {
        pool.0.lock().map(|p| p.len()).unwrap_or_default()
    }

    #[test]
    fn a_given_buffer_is_taken_again_in_this_run_and_the_next() {
        let len = MIN_BYTES; // f32s: four times the minimum size
        let pool = Pool::default();
        let address = scope(Some(&pool), || {
            let buffer: Vec<f32> = vec![1.0; len];
            let address = buffer.as_ptr();
            give(buffer);
            let again: Vec<f32> = take(len - 10);
            assert_eq!(again.as_ptr(), address, "the same memory");
            assert!(again.is_empty() && again.capacity() >= len - 10);
            give(again);
            // Another element type, or a request far smaller, leaves it in the pool.
            let other: Vec<f64> = take(len / 2);
            assert_ne!(other.as_ptr().cast::<f32>(), address);
            let smaller: Vec<f32> = overwritten(len / 2, 0.0);
            assert_ne!(smaller.as_ptr(), address);
            assert_eq!(active(), Some(1));
            address
        });
        assert_eq!(active(), None, "the run's end deactivates the pool");
        assert_eq!(kept(&pool), 1, "and keeps its buffers");
        scope(Some(&pool), || {
            let next: Vec<f32> = take(len - 10);
            assert_eq!(next.as_ptr(), address, "the next run reuses it");
        });
        // No pool: nothing is kept.
        scope(None, || {
            give(vec![1f32; len]);
            assert_eq!(active(), None);
        });
    }

    /// A kernel that overwrites its output gets a pooled buffer as it was given, plain values
    /// and all; a new buffer is all `value`. Strings are dropped when given.
    #[test]
    fn an_overwritten_buffer_keeps_its_values_and_a_taken_one_is_empty() {
        let len = MIN_BYTES;
        let pool = Pool::default();
        scope(Some(&pool), || {
            give((0..len).map(|i| i as f32).collect::<Vec<f32>>());
            let reused: Vec<f32> = overwritten(len - 3, -1.0);
            assert_eq!(reused.len(), len - 3);
            assert_eq!(reused[..4], [0.0, 1.0, 2.0, 3.0], "no fill pass");
            give(reused);
            assert!(take::<f32>(len - 3).is_empty());
            // A fresh buffer is all `value`.
            let fresh: Vec<f32> = overwritten(len, 7.0);
            assert!(fresh.iter().all(|&v| v == 7.0));
            give(vec![String::from("x"); len]);
            assert!(overwritten::<String>(len, String::new())
                .iter()
                .all(String::is_empty));
        });
    }

    #[test]
    fn the_pool_keeps_the_largest_buffers() {
        let pool = Pool::default();
        scope(Some(&pool), || {
            for i in 0..MAX_BUFFERS + 3 {
                give(vec![0f32; MIN_BYTES + i]);
            }
            assert_eq!(active(), Some(MAX_BUFFERS));
            let largest: Vec<f32> = take(MIN_BYTES + MAX_BUFFERS + 2);
            assert!(largest.capacity() >= MIN_BYTES + MAX_BUFFERS + 2);
            assert_eq!(active(), Some(MAX_BUFFERS - 1));
        });
    }

    #[test]
    fn pooled_buffers_are_held_on_each_runs_budget() {
        let pool = Pool::default();
        let budget = budget::Budget::new(1 << 30, u64::MAX);
        let bytes = 4 * MIN_BYTES as u64;
        budget.enter(|| {
            scope(Some(&pool), || {
                give(vec![0f32; MIN_BYTES]);
                assert_eq!(budget.held(), bytes);
                let taken: Vec<f32> = take(MIN_BYTES);
                assert_eq!(
                    budget.held(),
                    0,
                    "a taken buffer is charged as the value it becomes"
                );
                drop(taken);
                give(vec![0f32; MIN_BYTES]);
            });
        });
        // The next run, on another budget, counts the kept buffer from its start.
        let next = budget::Budget::new(1 << 30, u64::MAX);
        next.enter(|| scope(Some(&pool), || assert_eq!(next.held(), bytes)));
        assert_eq!(next.held(), 0);
        // A budget without room for it frees it, and records no refusal.
        let tight = budget::Budget::new(1024, u64::MAX);
        tight.enter(|| {
            scope(Some(&pool), || {
                assert_eq!(active(), Some(0));
                give(vec![0f32; MIN_BYTES]);
                assert_eq!(tight.held(), 0);
            })
        });
        assert!(tight.take_failure().is_none());
        assert_eq!(kept(&pool), 0);
    }
}
