//! Einsum with two operands (or one), as Keras' attention layers emit it: labels are
//! classified into batch, contracted and free dimensions, and the product runs as one batched
//! matrix multiplication between two transposes. Ellipses and repeated labels within one
//! operand (diagonals) are reported as unsupported.

use super::matmul::matmul;
use super::reduce::reduce;
use super::shape_ops::{permute, reshape};
use super::{fail, KernelContext, KernelError};
use crate::graph::attrs;
use crate::tensor::{Data, Tensor};

fn int_vector(values: &[usize]) -> Result<Tensor, KernelError> {
    let values = super::shape_ops::dims_i64(values)?;
    Ok(Tensor::from_data(Data::I64(
        ndarray::Array1::from(values).into_dyn(),
    )))
}

fn reshaped(x: &Tensor, dims: &[usize]) -> Result<Tensor, KernelError> {
    reshape(x, &int_vector(dims)?)
}

/// Sums away the listed labels of one operand.
fn sum_labels(
    ctx: &KernelContext<'_>,
    x: Tensor,
    labels: &mut Vec<char>,
    drop: &[char],
) -> Result<Tensor, KernelError> {
    let axes: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| drop.contains(l))
        .map(|(i, _)| i)
        .collect();
    if axes.is_empty() {
        return Ok(x);
    }
    labels.retain(|l| !drop.contains(l));
    let sum_ctx = KernelContext {
        node: &crate::proto::NodeDef {
            op: "Sum".into(),
            ..Default::default()
        },
        ..*ctx
    };
    reduce(&sum_ctx, &x, &int_vector(&axes)?)
}

fn positions(labels: &[char], wanted: &[char]) -> Vec<usize> {
    wanted
        .iter()
        .filter_map(|w| labels.iter().position(|l| l == w))
        .collect()
}

/// Some label appears more than once.
fn repeats(labels: &[char]) -> bool {
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len() != labels.len()
}

pub fn einsum(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> Result<Tensor, KernelError> {
    let equation = attrs::string(ctx.node, "equation")
        .unwrap_or_default()
        .replace(' ', "");
    if equation.contains("...") {
        return fail(format!(
            "einsum '{equation}': ellipses are not supported by graphopt's evaluator"
        ));
    }
    let (lhs, out) = equation.split_once("->").ok_or_else(|| {
        KernelError(format!(
            "einsum '{equation}' needs an explicit output ('->')"
        ))
    })?;
    let operands: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
    let out: Vec<char> = out.chars().collect();
    if repeats(&out) {
        return fail(format!(
            "einsum '{equation}': an output label appears more than once"
        ));
    }
    if operands.len() != inputs.len() || !(1..=2).contains(&inputs.len()) {
        return fail(format!(
            "einsum '{equation}' with {} inputs is not supported",
            inputs.len()
        ));
    }
    for (labels, x) in operands.iter().zip(inputs) {
        if labels.len() != x.shape().len() {
            return fail(format!(
                "einsum '{equation}': operand of shape {:?} does not match '{}'",
                x.shape(),
                labels.iter().collect::<String>()
            ));
        }
        if repeats(labels) {
            return fail(format!(
                "einsum '{equation}': repeated labels (diagonals) are not supported"
            ));
        }
    }
    let size_of = |label: char| -> usize {
        operands
            .iter()
            .zip(inputs)
            .find_map(|(labels, x)| {
                labels
                    .iter()
                    .position(|&l| l == label)
                    .map(|i| x.shape()[i])
            })
            .unwrap_or(1)
    };

    if inputs.len() == 1 {
        let mut labels = operands[0].clone();
        let drop: Vec<char> = labels
            .iter()
            .copied()
            .filter(|l| !out.contains(l))
            .collect();
        let x = sum_labels(ctx, inputs[0].clone(), &mut labels, &drop)?;
        return permute(&x, &positions(&labels, &out));
    }

    let (mut la, mut lb) = (operands[0].clone(), operands[1].clone());
    let only_a: Vec<char> = la
        .iter()
        .copied()
        .filter(|l| !lb.contains(l) && !out.contains(l))
        .collect();
    let only_b: Vec<char> = lb
        .iter()
        .copied()
        .filter(|l| !la.contains(l) && !out.contains(l))
        .collect();
    let a = sum_labels(ctx, inputs[0].clone(), &mut la, &only_a)?;
    let b = sum_labels(ctx, inputs[1].clone(), &mut lb, &only_b)?;

    let batch: Vec<char> = la
        .iter()
        .copied()
        .filter(|l| lb.contains(l) && out.contains(l))
        .collect();
    let contract: Vec<char> = la
        .iter()
        .copied()
        .filter(|l| lb.contains(l) && !out.contains(l))
        .collect();
    let free_a: Vec<char> = la.iter().copied().filter(|l| !lb.contains(l)).collect();
    let free_b: Vec<char> = lb.iter().copied().filter(|l| !la.contains(l)).collect();
    let product = |labels: &[char]| -> Result<usize, KernelError> {
        let dims: Vec<usize> = labels.iter().map(|&l| size_of(l)).collect();
        super::alloc::count(&dims)
    };
    let (nb, nm, nk, nn) = (
        product(&batch)?,
        product(&free_a)?,
        product(&contract)?,
        product(&free_b)?,
    );

    let order_a: Vec<char> = batch
        .iter()
        .chain(&free_a)
        .chain(&contract)
        .copied()
        .collect();
    let order_b: Vec<char> = batch
        .iter()
        .chain(&contract)
        .chain(&free_b)
        .copied()
        .collect();
    let a = reshaped(&permute(&a, &positions(&la, &order_a))?, &[nb, nm, nk])?;
    let b = reshaped(&permute(&b, &positions(&lb, &order_b))?, &[nb, nk, nn])?;
    let product = matmul(ctx.gemm, &a, &b, false, false)?;

    let result_labels: Vec<char> = batch
        .iter()
        .chain(&free_a)
        .chain(&free_b)
        .copied()
        .collect();
    let dims: Vec<usize> = result_labels.iter().map(|&l| size_of(l)).collect();
    let result = reshaped(&product, &dims)?;
    if result_labels.iter().any(|l| !out.contains(l))
        || out.iter().any(|l| !result_labels.contains(l))
    {
        return fail(format!(
            "einsum '{equation}': output labels do not match the operands"
        ));
    }
    permute(&result, &positions(&result_labels, &out))
}
