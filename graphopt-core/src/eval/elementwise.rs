//! Elementwise kernels: binary arithmetic and comparisons with broadcasting, unary math,
//! Select. float16/bfloat16 compute in float32 and round back, as TensorFlow's CPU kernels do.

use ndarray::ArrayD;
use num_traits::Float;

use super::broadcast::{zip2, zip3};
use super::cast::{from_f32, to_f32};
use super::recycle;
use super::{fail, KernelContext, KernelError};
use crate::graph::attrs;
use crate::proto::DataType;
use crate::tensor::{Data, Tensor};

/// Floats with the special functions the kernels need.
pub trait Real: Float + Copy + Send + Sync + 'static {
    /// e^x with the same bits on every machine ([`super::exp`] for float32, the libm crate's
    /// for float64), where `Float::exp` is the C library's.
    fn exp_fixed(self) -> Self;
    fn erf(self) -> Self;
    fn erfc(self) -> Self;
    /// libm's acosh and asinh, which take huge inputs to log(2x) where `Float`'s overflow.
    fn acosh(self) -> Self;
    fn asinh(self) -> Self;
    fn from_f64(v: f64) -> Self;
    // The C library's transcendental functions differ between systems by an ulp here and
    // there (glibc's tanhf, musl's, macOS's), which would make a folded constant, and so an
    // artifact, differ by machine. These are the libm crate's, the same bits everywhere; they
    // shadow `Float`'s, so a generic call that forgets them does not compile.
    fn tanh(self) -> Self;
    fn exp_m1(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn powf(self, y: Self) -> Self;
    fn atan2(self, x: Self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tan(self) -> Self;
    fn asin(self) -> Self;
    fn acos(self) -> Self;
    fn atan(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn atanh(self) -> Self;
}

/// `Real`'s libm-backed functions for one float type: `$name => $libm` pairs.
macro_rules! fixed_functions {
    ($($name:ident => $libm:path),* $(,)?) => {
        $(fn $name(self) -> Self {
            $libm(self)
        })*
    };
}

impl Real for f32 {
    fn exp_fixed(self) -> Self {
        super::exp::exp_f32(self)
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    fn erfc(self) -> Self {
        libm::erfcf(self)
    }
    fn acosh(self) -> Self {
        // libm's acoshf answers a number, not NaN, for x <= -2.
        if self < 1.0 {
            f32::NAN
        } else {
            libm::acoshf(self)
        }
    }
    fn asinh(self) -> Self {
        libm::asinhf(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fixed_functions!(
        tanh => libm::tanhf, exp_m1 => libm::expm1f, ln => libm::logf, ln_1p => libm::log1pf,
        sin => libm::sinf, cos => libm::cosf, tan => libm::tanf, asin => libm::asinf,
        acos => libm::acosf, atan => libm::atanf, sinh => libm::sinhf, cosh => libm::coshf,
        atanh => libm::atanhf,
    );
    fn powf(self, y: Self) -> Self {
        libm::powf(self, y)
    }
    fn atan2(self, x: Self) -> Self {
        libm::atan2f(self, x)
    }
}

impl Real for f64 {
    fn exp_fixed(self) -> Self {
        libm::exp(self)
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn erfc(self) -> Self {
        libm::erfc(self)
    }
    fn acosh(self) -> Self {
        if self < 1.0 {
            f64::NAN
        } else {
            libm::acosh(self)
        }
    }
    fn asinh(self) -> Self {
        libm::asinh(self)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fixed_functions!(
        tanh => libm::tanh, exp_m1 => libm::expm1, ln => libm::log, ln_1p => libm::log1p,
        sin => libm::sin, cos => libm::cos, tan => libm::tan, asin => libm::asin,
        acos => libm::acos, atan => libm::atan, sinh => libm::sinh, cosh => libm::cosh,
        atanh => libm::atanh,
    );
    fn powf(self, y: Self) -> Self {
        libm::pow(self, y)
    }
    fn atan2(self, x: Self) -> Self {
        libm::atan2(self, x)
    }
}

// The commonest float ops as named functions: the loops in `with_float_binary!` and
// `with_float_unary!` get them as fn items, which inline and vectorize; a fn pointer or a
// boxed closure costs an indirect call per element.
pub(super) fn add<T: Real>(x: T, y: T) -> T {
    x + y
}
pub(super) fn sub<T: Real>(x: T, y: T) -> T {
    x - y
}
pub(super) fn mul<T: Real>(x: T, y: T) -> T {
    x * y
}
pub(super) fn div<T: Real>(x: T, y: T) -> T {
    x / y
}
/// TensorFlow's Maximum: NaN in either operand gives NaN.
pub(super) fn maximum<T: Real>(x: T, y: T) -> T {
    if y.is_nan() || x < y {
        y
    } else {
        x
    }
}
/// TensorFlow's Minimum: NaN in either operand gives NaN.
pub(super) fn minimum<T: Real>(x: T, y: T) -> T {
    if y.is_nan() || y < x {
        y
    } else {
        x
    }
}
pub(super) fn relu<T: Real>(x: T) -> T {
    if x > T::zero() || x.is_nan() {
        x
    } else {
        T::zero()
    }
}
pub(super) fn relu6<T: Real>(x: T) -> T {
    // NaN stays NaN, as in TensorFlow (`Float::max` would turn it into 0).
    let six = T::from_f64(6.0);
    if x < T::zero() {
        T::zero()
    } else if x > six {
        six
    } else {
        x
    }
}
pub(super) fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fixed())
}
pub(super) fn exp<T: Real>(x: T) -> T {
    x.exp_fixed()
}
pub(super) fn tanh<T: Real>(x: T) -> T {
    Real::tanh(x)
}

/// `$body` with `$f` bound to the float function of binary op `$op` on `$t` (a fn item for
/// the common ops); `None` when `$op` is not a float op.
macro_rules! with_float_binary {
    ($op:expr, $t:ty, $f:ident => $body:expr) => {{
        use $crate::eval::elementwise as e;
        match $op {
            "Add" | "AddV2" | "BiasAdd" => {
                let $f = e::add::<$t>;
                Some($body)
            }
            "Sub" => {
                let $f = e::sub::<$t>;
                Some($body)
            }
            "Mul" => {
                let $f = e::mul::<$t>;
                Some($body)
            }
            "RealDiv" | "Div" => {
                let $f = e::div::<$t>;
                Some($body)
            }
            "Maximum" => {
                let $f = e::maximum::<$t>;
                Some($body)
            }
            "Minimum" => {
                let $f = e::minimum::<$t>;
                Some($body)
            }
            other => match e::float_binary::<$t>(other) {
                Some($f) => Some($body),
                None => None,
            },
        }
    }};
}
pub(super) use with_float_binary;

/// `$body` with `$f` bound to the float function of unary op `$op` (a fn item for the common
/// activations); `None` when `$op` is not a float op.
macro_rules! with_float_unary {
    ($op:expr, $t:ty, $ctx:expr, $f:ident => $body:expr) => {{
        use $crate::eval::elementwise as e;
        match $op {
            "Relu" => {
                let $f = e::relu::<$t>;
                Some($body)
            }
            "Relu6" => {
                let $f = e::relu6::<$t>;
                Some($body)
            }
            "Sigmoid" => {
                let $f = e::sigmoid::<$t>;
                Some($body)
            }
            "Exp" => {
                let $f = e::exp::<$t>;
                Some($body)
            }
            "Tanh" => {
                let $f = e::tanh::<$t>;
                Some($body)
            }
            other => match e::float_unary::<$t>(other, $ctx) {
                Some($f) => Some($body),
                None => None,
            },
        }
    }};
}
pub(super) use with_float_unary;

pub(super) fn float_binary<T: Real>(op: &str) -> Option<fn(T, T) -> T> {
    Some(match op {
        "Add" | "AddV2" => add,
        "Sub" => sub,
        "Mul" => mul,
        "RealDiv" | "Div" => div,
        // TensorFlow's TruncateDiv rounds the quotient towards zero for floats too.
        "TruncateDiv" => |x, y| (x / y).trunc(),
        "DivNoNan" => |x, y| if y == T::zero() { T::zero() } else { x / y },
        "MulNoNan" => |x, y| if y == T::zero() { T::zero() } else { x * y },
        "Maximum" => maximum,
        "Minimum" => minimum,
        "Pow" => |x, y| Real::powf(x, y),
        "SquaredDifference" => |x, y| (x - y) * (x - y),
        "FloorDiv" => |x, y| (x / y).floor(),
        "FloorMod" => |x, y| {
            let r = x % y;
            if r != T::zero() && ((r < T::zero()) != (y < T::zero())) {
                r + y
            } else {
                r
            }
        },
        "TruncateMod" => |x, y| x % y,
        "Atan2" => |x, y| Real::atan2(x, y),
        "BiasAdd" => add,
        _ => return None,
    })
}

trait Int:
    num_traits::PrimInt
    + num_traits::WrappingAdd
    + num_traits::WrappingSub
    + num_traits::WrappingMul
    + num_traits::CheckedRem
    + 'static
{
}
impl<T> Int for T where
    T: num_traits::PrimInt
        + num_traits::WrappingAdd
        + num_traits::WrappingSub
        + num_traits::WrappingMul
        + num_traits::CheckedRem
        + 'static
{
}

fn int_binary<T: Int>(op: &str, x: T, y: T) -> Result<T, KernelError> {
    let zero = T::zero();
    let div_check = |y: T| {
        if y == zero {
            fail("integer division by zero")
        } else {
            Ok(())
        }
    };
    Ok(match op {
        "Add" | "AddV2" | "BiasAdd" => x.wrapping_add(&y),
        "Sub" => x.wrapping_sub(&y),
        "Mul" => x.wrapping_mul(&y),
        "Div" | "TruncateDiv" => {
            div_check(y)?;
            x.checked_div(&y).unwrap_or(x)
        }
        "FloorDiv" => {
            div_check(y)?;
            let q = x.checked_div(&y).unwrap_or(x);
            // `%` itself panics on MIN % -1 (whose remainder is 0), in every profile.
            let exact = x.checked_rem(&y).unwrap_or(zero) == zero;
            if !exact && ((x < zero) != (y < zero)) {
                q - T::one()
            } else {
                q
            }
        }
        "FloorMod" => {
            div_check(y)?;
            let r = x.checked_rem(&y).unwrap_or(zero);
            if r != zero && ((r < zero) != (y < zero)) {
                r + y
            } else {
                r
            }
        }
        "TruncateMod" => {
            div_check(y)?;
            x.checked_rem(&y).unwrap_or(zero)
        }
        "Maximum" => x.max(y),
        "Minimum" => x.min(y),
        "SquaredDifference" => (x.wrapping_sub(&y)).wrapping_mul(&x.wrapping_sub(&y)),
        "Pow" => {
            if y < zero {
                return fail("integers to negative powers are not allowed");
            }
            let mut result = T::one();
            let mut base = x;
            let mut exp = y;
            while exp > zero {
                if exp & T::one() == T::one() {
                    result = result.wrapping_mul(&base);
                }
                base = base.wrapping_mul(&base);
                exp = exp >> 1;
            }
            result
        }
        "BitwiseAnd" => x & y,
        "BitwiseOr" => x | y,
        "BitwiseXor" => x ^ y,
        _ => return fail(format!("{op} is not defined for integers")),
    })
}

fn int_zip<T: Int>(op: &str, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>, KernelError> {
    let error = std::cell::RefCell::new(None);
    let out = zip2(a, b, |&x, &y| match int_binary(op, x, y) {
        Ok(v) => v,
        Err(e) => {
            error.borrow_mut().get_or_insert(e);
            T::zero()
        }
    })?;
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn float_zip<T: Real>(op: &str, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>, KernelError> {
    with_float_binary!(op, T, f => zip2(a, b, |&x, &y| f(x, y)))
        .ok_or_else(|| KernelError(format!("{op} is not a float operation")))?
}

/// Runs a float computation on float16/bfloat16 by widening to float32.
fn via_f32(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(&Tensor, &Tensor) -> Result<Tensor, KernelError>,
) -> Result<Tensor, KernelError> {
    let wide = f(&to_f32(a)?, &to_f32(b)?)?;
    if wide.dtype() == crate::proto::DataType::DtFloat {
        from_f32(&wide, a.dtype())
    } else {
        Ok(wide)
    }
}

/// Binary arithmetic with broadcasting.
pub fn arithmetic(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor, KernelError> {
    let data = match (a.data(), b.data()) {
        (Data::F32(x), Data::F32(y)) => Data::F32(float_zip(op, x, y)?),
        (Data::F64(x), Data::F64(y)) => Data::F64(float_zip(op, x, y)?),
        (Data::F16(_), Data::F16(_)) | (Data::BF16(_), Data::BF16(_)) => {
            return via_f32(a, b, |x, y| arithmetic(op, x, y));
        }
        (Data::I8(x), Data::I8(y)) => Data::I8(int_zip(op, x, y)?),
        (Data::I16(x), Data::I16(y)) => Data::I16(int_zip(op, x, y)?),
        (Data::I32(x), Data::I32(y)) => Data::I32(int_zip(op, x, y)?),
        (Data::I64(x), Data::I64(y)) => Data::I64(int_zip(op, x, y)?),
        (Data::U8(x), Data::U8(y)) => Data::U8(int_zip(op, x, y)?),
        (Data::U16(x), Data::U16(y)) => Data::U16(int_zip(op, x, y)?),
        (Data::U32(x), Data::U32(y)) => Data::U32(int_zip(op, x, y)?),
        (Data::U64(x), Data::U64(y)) => Data::U64(int_zip(op, x, y)?),
        (Data::Str(x), Data::Str(y)) if matches!(op, "Add" | "AddV2") => {
            // Each joined string is new memory: at most the longest of each side, per element.
            let longest = |a: &ArrayD<bytes::Bytes>| a.iter().map(bytes::Bytes::len).max();
            let shape = super::broadcast::broadcast_shape(x.shape(), y.shape())?;
            let per_element = longest(x).unwrap_or(0) as u128 + longest(y).unwrap_or(0) as u128;
            let total = per_element.saturating_mul(super::alloc::count(&shape)? as u128);
            crate::budget::alloc(u64::try_from(total).unwrap_or(u64::MAX))?;
            super::alloc::work(total)?;
            Data::Str(zip2(x, y, |p, q| {
                let mut joined = p.to_vec();
                joined.extend_from_slice(q);
                bytes::Bytes::from(joined)
            })?)
        }
        _ => {
            return fail(format!(
                "{op} needs two inputs of one numeric type, got {:?} and {:?}",
                a.dtype(),
                b.dtype()
            ))
        }
    };
    Tensor::new(a.dtype(), data).map_err(Into::into)
}

/// Comparisons and logical binary ops, producing bool.
pub fn compare(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor, KernelError> {
    macro_rules! cmp {
        ($x:expr, $y:expr) => {
            match op {
                "Equal" => zip2($x, $y, |p, q| p == q)?,
                "NotEqual" => zip2($x, $y, |p, q| p != q)?,
                "Less" => zip2($x, $y, |p, q| p < q)?,
                "LessEqual" => zip2($x, $y, |p, q| p <= q)?,
                "Greater" => zip2($x, $y, |p, q| p > q)?,
                "GreaterEqual" => zip2($x, $y, |p, q| p >= q)?,
                _ => return fail(format!("unknown comparison {op}")),
            }
        };
    }
    let out = match (a.data(), b.data()) {
        (Data::Bool(x), Data::Bool(y)) => match op {
            "LogicalAnd" => zip2(x, y, |p, q| *p && *q)?,
            "LogicalOr" => zip2(x, y, |p, q| *p || *q)?,
            _ => cmp!(x, y),
        },
        (Data::F32(x), Data::F32(y)) => cmp!(x, y),
        (Data::F64(x), Data::F64(y)) => cmp!(x, y),
        (Data::F16(x), Data::F16(y)) => cmp!(x, y),
        (Data::BF16(x), Data::BF16(y)) => cmp!(x, y),
        (Data::I8(x), Data::I8(y)) => cmp!(x, y),
        (Data::I16(x), Data::I16(y)) => cmp!(x, y),
        (Data::I32(x), Data::I32(y)) => cmp!(x, y),
        (Data::I64(x), Data::I64(y)) => cmp!(x, y),
        (Data::U8(x), Data::U8(y)) => cmp!(x, y),
        (Data::U16(x), Data::U16(y)) => cmp!(x, y),
        (Data::U32(x), Data::U32(y)) => cmp!(x, y),
        (Data::U64(x), Data::U64(y)) => cmp!(x, y),
        (Data::Str(x), Data::Str(y)) if matches!(op, "Equal" | "NotEqual") => cmp!(x, y),
        _ => {
            return fail(format!(
                "{op} needs two inputs of one type, got {:?} and {:?}",
                a.dtype(),
                b.dtype()
            ))
        }
    };
    Ok(Tensor::from_data(Data::Bool(out)))
}

pub(super) fn float_unary<T: Real>(
    op: &str,
    ctx: &KernelContext<'_>,
) -> Option<Box<dyn Fn(T) -> T + Send + Sync>> {
    let c = T::from_f64;
    let alpha = T::from_f64(f64::from(attrs::float(ctx.node, "alpha").unwrap_or(0.2)));
    Some(match op {
        "Neg" => Box::new(|x: T| -x),
        "Abs" => Box::new(|x: T| x.abs()),
        "Sqrt" => Box::new(|x: T| x.sqrt()),
        "Rsqrt" => Box::new(|x: T| T::one() / x.sqrt()),
        "Square" => Box::new(|x: T| x * x),
        "Exp" => Box::new(exp),
        "Expm1" => Box::new(|x: T| Real::exp_m1(x)),
        "Log" => Box::new(|x: T| Real::ln(x)),
        "Log1p" => Box::new(|x: T| Real::ln_1p(x)),
        "Tanh" => Box::new(tanh),
        "Sigmoid" => Box::new(sigmoid),
        "Erf" => Box::new(|x: T| x.erf()),
        "Erfc" => Box::new(|x: T| x.erfc()),
        "Relu" => Box::new(relu),
        "Relu6" => Box::new(relu6),
        "Elu" => Box::new(|x: T| if x < T::zero() { Real::exp_m1(x) } else { x }),
        "Selu" => Box::new(move |x: T| {
            let scale = c(1.050_700_987_355_480_5);
            let alpha = c(1.673_263_242_354_377_3);
            if x < T::zero() {
                scale * alpha * Real::exp_m1(x)
            } else {
                scale * x
            }
        }),
        "LeakyRelu" => Box::new(move |x: T| if x > T::zero() { x } else { x * alpha }),
        "Softplus" => {
            // TensorFlow's: x above -threshold, e^x below threshold, log(1 + e^x) between,
            // where threshold = log(epsilon) + 2 of the type computed in: float32's for
            // float16 (as TF 2.21 measures), bfloat16's own (log(2^-7) + 2 in bfloat16) for
            // bfloat16, which computes here in float32.
            let threshold = match attrs::dtype(ctx.node, "T") {
                Some(DataType::DtBfloat16) => c(-2.843_75),
                _ => Real::ln(T::epsilon()) + c(2.0),
            };
            Box::new(move |x: T| {
                if x > -threshold {
                    x
                } else if x < threshold {
                    x.exp_fixed()
                } else {
                    Real::ln_1p(x.exp_fixed())
                }
            })
        }
        "Softsign" => Box::new(|x: T| x / (T::one() + x.abs())),
        "Reciprocal" | "Inv" => Box::new(|x: T| T::one() / x),
        "Floor" => Box::new(|x: T| x.floor()),
        "Ceil" => Box::new(|x: T| x.ceil()),
        // Banker's rounding, as TensorFlow's Round.
        "Round" | "Rint" => Box::new(move |x: T| {
            let r = x.round();
            if (x - x.trunc()).abs() == c(0.5) {
                c(2.0) * (x / c(2.0)).round()
            } else {
                r
            }
        }),
        "Sign" => Box::new(|x: T| {
            if x > T::zero() {
                T::one()
            } else if x < T::zero() {
                -T::one()
            } else if x.is_nan() {
                x
            } else {
                // TensorFlow's sign of -0.0 is +0.0.
                T::zero()
            }
        }),
        "Sin" => Box::new(|x: T| Real::sin(x)),
        "Cos" => Box::new(|x: T| Real::cos(x)),
        "Tan" => Box::new(|x: T| Real::tan(x)),
        "Asin" => Box::new(|x: T| Real::asin(x)),
        "Acos" => Box::new(|x: T| Real::acos(x)),
        "Atan" => Box::new(|x: T| Real::atan(x)),
        "Sinh" => Box::new(|x: T| Real::sinh(x)),
        "Cosh" => Box::new(|x: T| Real::cosh(x)),
        "Asinh" => Box::new(|x: T| Real::asinh(x)),
        "Acosh" => Box::new(|x: T| Real::acosh(x)),
        "Atanh" => Box::new(|x: T| Real::atanh(x)),
        _ => return None,
    })
}

fn int_unary<
    T: num_traits::PrimInt + num_traits::WrappingNeg + num_traits::WrappingMul + 'static,
>(
    op: &str,
) -> Option<fn(T) -> T> {
    Some(match op {
        "Neg" => |x: T| x.wrapping_neg(),
        "Abs" => |x: T| if x < T::zero() { x.wrapping_neg() } else { x },
        "Square" => |x: T| x.wrapping_mul(&x),
        "Sign" => |x: T| {
            if x > T::zero() {
                T::one()
            } else if x < T::zero() {
                T::zero() - T::one()
            } else {
                x
            }
        },
        "Relu" => |x: T| x.max(T::zero()),
        "Invert" => |x: T| !x,
        _ => return None,
    })
}

/// Unary math on floats (and the integer ops that make sense on integers).
pub fn unary(ctx: &KernelContext<'_>, x: &Tensor) -> Result<Tensor, KernelError> {
    let op = ctx.node.op.as_str();
    super::broadcast::check_output(x.shape(), crate::tensor::memory_element_size(x.dtype()))?;
    let unsupported = || KernelError(format!("{op} is not defined for {:?}", x.dtype()));
    macro_rules! ints {
        ($a:expr, $v:ident) => {
            Data::$v($a.mapv(int_unary(op).ok_or_else(unsupported)?))
        };
    }
    let data = match x.data() {
        Data::F32(a) => Data::F32(
            with_float_unary!(op, f32, ctx, f => recycle::map(a, f)).ok_or_else(unsupported)?,
        ),
        Data::F64(a) => Data::F64(
            with_float_unary!(op, f64, ctx, f => recycle::map(a, f)).ok_or_else(unsupported)?,
        ),
        Data::F16(_) | Data::BF16(_) => return from_f32(&unary(ctx, &to_f32(x)?)?, x.dtype()),
        Data::I8(a) => ints!(a, I8),
        Data::I16(a) => ints!(a, I16),
        Data::I32(a) => ints!(a, I32),
        Data::I64(a) => ints!(a, I64),
        Data::U8(a) => ints!(a, U8),
        Data::U16(a) => ints!(a, U16),
        Data::U32(a) => ints!(a, U32),
        Data::U64(a) => ints!(a, U64),
        Data::Bool(a) if op == "LogicalNot" => Data::Bool(a.mapv(|v| !v)),
        _ => return Err(unsupported()),
    };
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

/// Select / SelectV2: `cond ? t : e`. Select's rank-1 condition picks whole rows.
pub fn select(v2: bool, cond: &Tensor, t: &Tensor, e: &Tensor) -> Result<Tensor, KernelError> {
    let Data::Bool(c) = cond.data() else {
        return fail("the condition must be bool");
    };
    let c = if !v2 && c.ndim() == 1 && t.shape().len() > 1 {
        // Select broadcasts a vector condition along the first dimension.
        let mut shape = vec![1; t.shape().len()];
        shape[0] = c.len();
        super::shape_ops::reshaped(c, &shape)?
    } else {
        super::alloc::output::<bool>(c.shape())?;
        c.clone()
    };
    macro_rules! pick {
        ($($v:ident),*) => {
            match (t.data(), e.data()) {
                $((Data::$v(a), Data::$v(b)) => Data::$v(zip3(&c, a, b, |c, a, b| if *c { a.clone() } else { b.clone() })?),)*
                _ => return fail("both branches must have one type"),
            }
        };
    }
    let data =
        pick!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, Str, C64, C128);
    Tensor::new(t.dtype(), data).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Gemm, Limits};
    use crate::proto::NodeDef;

    fn f32s(values: &[f32]) -> Tensor {
        Tensor::from_data(Data::F32(ndarray::arr1(values).into_dyn()))
    }

    fn values(t: &Tensor) -> Vec<f32> {
        match t.data() {
            Data::F32(a) => a.iter().copied().collect(),
            other => panic!("not float32: {other:?}"),
        }
    }

    fn unary_f32(op: &str, x: &[f32]) -> Vec<f32> {
        let node = NodeDef {
            op: op.into(),
            ..Default::default()
        };
        let ctx = KernelContext {
            node: &node,
            limits: Limits::default(),
            gemm: Gemm::Portable,
        };
        values(&unary(&ctx, &f32s(x)).expect("unary"))
    }

    /// Bits, so that NaN equals NaN and -0.0 differs from 0.0.
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter()
            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
            .collect()
    }

    /// TensorFlow 2.21: Maximum/Minimum give NaN when either operand is NaN.
    #[test]
    fn maximum_and_minimum_propagate_nan_from_either_operand() {
        let x = f32s(&[f32::NAN, 1.0, 2.0, f32::NAN]);
        let y = f32s(&[1.0, f32::NAN, 1.0, f32::NAN]);
        for (op, expected) in [
            ("Maximum", [f32::NAN, f32::NAN, 2.0, f32::NAN]),
            ("Minimum", [f32::NAN, f32::NAN, 1.0, f32::NAN]),
        ] {
            let out = arithmetic(op, &x, &y).expect("float op");
            assert_eq!(bits(&values(&out)), bits(&expected), "{op}");
        }
    }

    /// TensorFlow's float TruncateDiv: TruncateDiv(7., 2.) = 3., TruncateDiv(-7., 2.) = -3.
    #[test]
    fn float_truncate_div_rounds_towards_zero() {
        let out = arithmetic(
            "TruncateDiv",
            &f32s(&[7.0, -7.0, 1.0, 1.0]),
            &f32s(&[2.0, 2.0, 3.0, 0.0]),
        )
        .expect("float op");
        assert_eq!(values(&out), [3.0, -3.0, 0.0, f32::INFINITY]);
    }

    /// TensorFlow: Relu6(NaN) = NaN.
    #[test]
    fn relu6_keeps_nan() {
        let out = unary_f32("Relu6", &[f32::NAN, -1.0, 7.0, 2.5]);
        assert_eq!(bits(&out), bits(&[f32::NAN, 0.0, 6.0, 2.5]));
    }

    /// TensorFlow: Sign(-0.0) = +0.0, Sign(NaN) = NaN.
    #[test]
    fn sign_of_negative_zero_is_positive_zero() {
        let out = unary_f32("Sign", &[-0.0, 0.0, f32::NAN, -3.0]);
        assert_eq!(bits(&out), bits(&[0.0, 0.0, f32::NAN, -1.0]));
    }

    /// TensorFlow 2.21's Softplus thresholds: x itself above -(log(eps) + 2) (float32:
    /// 13.94; bfloat16: 2.84), e^x below log(eps) + 2, log(1 + e^x) between.
    #[test]
    fn softplus_uses_tensorflows_thresholds() {
        // float32: 14 is returned as it is (log(1 + e^14) rounds one ulp above 14).
        let out = unary_f32("Softplus", &[14.0, 20.0, 13.9, -20.0]);
        assert_eq!(out[..2], [14.0, 20.0]);
        assert_eq!(out[2], 13.900_001);
        assert_eq!(out[3], (-20f32).exp_fixed());
        // bfloat16 (computed in float32 under a node of T=bfloat16): 3 stays 3 (was 3.046875).
        let mut node = NodeDef {
            op: "Softplus".into(),
            ..Default::default()
        };
        node.attr.insert(
            "T".into(),
            crate::proto::AttrValue {
                value: Some(crate::proto::attr_value::Value::Type(
                    DataType::DtBfloat16 as i32,
                )),
            },
        );
        let ctx = KernelContext {
            node: &node,
            limits: Limits::default(),
            gemm: Gemm::Portable,
        };
        let x = Tensor::from_data(Data::BF16(
            ndarray::arr1(&[3.0f32, 2.796_875, -1.0].map(half::bf16::from_f32)).into_dyn(),
        ));
        let Data::BF16(y) = unary(&ctx, &x).expect("Softplus").into_data() else {
            panic!("not bfloat16")
        };
        let y: Vec<f32> = y.iter().map(|v| v.to_f32()).collect();
        assert_eq!(y, [3.0, 2.859_375, 0.3125]);
    }

    /// TensorFlow: Acosh(x) = NaN for every x < 1 (libm's acoshf gave -5.44 for -88.8).
    #[test]
    fn acosh_below_one_is_nan() {
        let out = unary_f32("Acosh", &[-88.8, -2.0, -4000.0, 0.5, 1.0]);
        assert!(out[..4].iter().all(|v| v.is_nan()), "{out:?}");
        assert_eq!(out[4], 0.0);
    }
}
