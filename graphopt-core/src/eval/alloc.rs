//! What a kernel asks before it allocates or loops. Dimensions, attributes and values come
//! from the model file, so every size is computed with checked arithmetic (overflow is an
//! error) and every allocation or loop sized by them goes through the per-tensor limit of the
//! evaluation ([`super::with_limits`]) and the command's [`budget`](crate::budget).

use super::{broadcast, KernelError};
use crate::analysis::geometry;
use crate::budget;

/// Elements of `dims`, checked for overflow (zero-element shapes may have huge dims).
pub fn count(dims: &[usize]) -> Result<usize, KernelError> {
    Ok(geometry::element_count(dims)?)
}

/// Asks for an output of `dims` with elements of type `T`: the per-tensor limit and the
/// budget's memory, and charges one unit of work per element. Returns the element count.
pub fn output<T>(dims: &[usize]) -> Result<usize, KernelError> {
    broadcast::check_output(dims, std::mem::size_of::<T>())
}

/// Asks for `count` items of `T` that are not a tensor's elements (index lists, output lists,
/// copies), and charges them as work.
pub fn items<T>(count: usize, what: &str) -> Result<(), KernelError> {
    let size = std::mem::size_of::<T>().max(1);
    budget::alloc_items(count, size, what)?;
    budget::work(count as u64)?;
    Ok(())
}

/// Charges `units` iterations of a loop (a product that may overflow a u64 counts as more
/// than any budget).
pub fn work(units: u128) -> Result<(), KernelError> {
    Ok(budget::work_items(units)?)
}

/// `a * b * ...` for loop bounds, in u128 so a product of dims never wraps.
pub fn loops(factors: &[usize]) -> u128 {
    factors
        .iter()
        .fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// [`output`] for the element type of `like` (a kernel generic over `map_data!`).
pub fn output_like<S: ndarray::RawData, D>(
    _like: &ndarray::ArrayBase<S, D>,
    dims: &[usize],
) -> Result<usize, KernelError> {
    broadcast::check_output(dims, std::mem::size_of::<S::Elem>())
}
