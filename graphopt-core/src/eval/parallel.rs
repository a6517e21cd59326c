//! Work split over threads, for the fast kernels only (`verify`, the facade's `eval`): with
//! the `threads` feature, tasks run on one pool of threads kept for the whole process;
//! without it, one after another on the calling thread. A split never changes a result:
//! each element is computed by the same code from the same inputs whichever thread runs it,
//! so results are bit-identical to one thread's. Constant folding and every path that
//! writes an artifact never use this pool (batch-norm folding scales large weights on a
//! scoped second thread of its own, `rewrite::weights`: one multiplication per element
//! whichever thread does it, no reduction whose order a split could change).

/// How many threads the work is split over: 1 without the `threads` feature, else
/// `MATMUL_NUM_THREADS` or every core the process may use.
pub fn threads() -> usize {
    #[cfg(feature = "threads")]
    return pool::count();
    #[cfg(not(feature = "threads"))]
    1
}

/// Runs every task: the last on this thread, the others on the pool's threads when there
/// is a pool (returning when all are done), else one after another here.
pub fn each<'a, F: FnOnce() + Send + 'a>(mut tasks: Vec<F>) {
    let Some(last) = tasks.pop() else {
        return;
    };
    #[cfg(feature = "threads")]
    if let Some(pool) = pool::get() {
        // The calling thread takes a share rather than waiting idle: on a machine with as
        // many cores as threads, an extra busy thread would only take turns with the others.
        return pool.in_place_scope(|scope| {
            for task in tasks {
                scope.spawn(move |_| task());
            }
            last();
        });
    }
    for task in tasks {
        task();
    }
    last();
}

/// Below this much work (multiply-adds, element operations) a kernel stays on one thread:
/// handing it to the pool would cost more than it saves.
pub const MIN_SPLIT_WORK: usize = 1 << 18;

/// `fill(first_row, rows)` over `out` cut into blocks of whole rows of `row` elements, one
/// block per thread when the kernel's `work` is worth it, else one call for all of `out`.
pub fn rows<T: Send>(
    out: &mut [T],
    row: usize,
    work: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) {
    let count = out.len().checked_div(row).unwrap_or(0);
    let parts = threads().min(count);
    if parts < 2 || work < MIN_SPLIT_WORK {
        return fill(0, out);
    }
    let fill = &fill;
    let mut tasks = Vec::with_capacity(parts);
    let mut rest = out;
    let mut first = 0;
    for part in 0..parts {
        // Even blocks, the remainder spread over the first ones.
        let size = count / parts + usize::from(part < count % parts);
        // The last block takes whatever is left (all of it when `row` divides `out`).
        let (block, after) = if part + 1 == parts {
            (std::mem::take(&mut rest), &mut [][..])
        } else {
            rest.split_at_mut(size * row)
        };
        rest = after;
        let start = first;
        tasks.push(move || fill(start, block));
        first += size;
    }
    each(tasks);
}

#[cfg(feature = "threads")]
mod pool {
    use std::sync::OnceLock;

    /// `MATMUL_NUM_THREADS`, else every core the process may use.
    pub fn count() -> usize {
        static COUNT: OnceLock<usize> = OnceLock::new();
        *COUNT.get_or_init(|| {
            std::env::var("MATMUL_NUM_THREADS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .clamp(1, 64)
        })
    }

    /// The process's pool of [`count`] - 1 threads (the caller is the last), started on
    /// first use; `None` with one thread, or when the system refuses threads (the work then
    /// runs on the caller's).
    pub fn get() -> Option<&'static rayon_core::ThreadPool> {
        static POOL: OnceLock<Option<rayon_core::ThreadPool>> = OnceLock::new();
        POOL.get_or_init(|| {
            let threads = count();
            if threads < 2 {
                return None;
            }
            rayon_core::ThreadPoolBuilder::new()
                .num_threads(threads - 1)
                .thread_name(|i| format!("graphopt-eval-{i}"))
                .build()
                .ok()
        })
        .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_filled_once_each_whatever_the_split() {
        for (len, row, work) in [
            (10, 2, usize::MAX),
            (7, 1, usize::MAX),
            (12, 3, 0),
            (0, 4, 9),
        ] {
            let mut out = vec![0usize; len];
            rows(&mut out, row, work, |first, block| {
                for (k, value) in block.iter_mut().enumerate() {
                    *value += first * row + k + 1;
                }
            });
            let expected: Vec<usize> = (1..=len).collect();
            assert_eq!(out, expected, "{len} elements in rows of {row}");
        }
    }

    #[test]
    fn every_task_runs() {
        let done: Vec<std::sync::atomic::AtomicBool> = (0..5).map(|_| Default::default()).collect();
        each(
            done.iter()
                .map(|flag| move || flag.store(true, std::sync::atomic::Ordering::Relaxed))
                .collect(),
        );
        assert!(done
            .iter()
            .all(|f| f.load(std::sync::atomic::Ordering::Relaxed)));
    }
}
