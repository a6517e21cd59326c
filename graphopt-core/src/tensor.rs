//! Tensors: `TensorProto` <-> typed n-dimensional arrays for every numeric dtype, bool and
//! string, in both of TensorFlow's encodings (`tensor_content` bytes and the typed `*_val`
//! fields, including the shorthand where fewer values than elements repeat the last one).
//!
//! Decoding is bounded: a shape whose element count or in-memory size exceeds [`Limits`] (one
//! tensor) or the command's [`budget`] is an error before anything is
//! allocated, so a hostile `TensorProto` cannot exhaust memory.

use bytes::Bytes;
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

use crate::budget::{self, BudgetError};
use crate::proto::{tensor_shape_proto, DataType, TensorProto, TensorShapeProto};

/// Why a tensor could not be decoded or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("dtype {0} is not supported by graphopt's tensors")]
    UnsupportedDtype(String),
    #[error("dimension {index} is {size}; dimensions must be known and non-negative")]
    BadDimension { index: usize, size: i64 },
    #[error(
        "the shape holds {elements} elements ({bytes} bytes), over the limit of {limit} bytes"
    )]
    TooLarge {
        elements: u128,
        bytes: u128,
        limit: u64,
    },
    #[error(
        "a shape with no elements whose other dimensions multiply to {product} elements cannot \
         be addressed (over {max} bytes)"
    )]
    Unaddressable { product: u128, max: u64 },
    #[error("tensor_content has {actual} bytes, but {expected} are needed for the shape")]
    ContentSize { actual: usize, expected: usize },
    #[error("{count} values given for a shape of {elements} elements")]
    TooManyValues { count: usize, elements: usize },
    #[error("{0}")]
    Shape(String),
    #[error("{0}")]
    Budget(#[from] BudgetError),
}

/// The largest one tensor may be, in bytes of memory (the command's budget bounds them all
/// together, see [`crate::budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
}

impl Default for Limits {
    /// 4 GiB: more than any real weight tensor, far less than a hostile shape asks for.
    fn default() -> Self {
        Limits { max_bytes: 4 << 30 }
    }
}

/// Element storage. Quantized dtypes share the storage of their integer type.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    F16(ArrayD<f16>),
    BF16(ArrayD<bf16>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    Bool(ArrayD<bool>),
    Str(ArrayD<Bytes>),
    /// Interleaved (real, imaginary).
    C64(ArrayD<[f32; 2]>),
    C128(ArrayD<[f64; 2]>),
}

/// Applies `$body` to the array inside any `Data` variant, binding it as `$a`.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_data {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F32($a) => $body,
            $crate::tensor::Data::F64($a) => $body,
            $crate::tensor::Data::F16($a) => $body,
            $crate::tensor::Data::BF16($a) => $body,
            $crate::tensor::Data::I8($a) => $body,
            $crate::tensor::Data::I16($a) => $body,
            $crate::tensor::Data::I32($a) => $body,
            $crate::tensor::Data::I64($a) => $body,
            $crate::tensor::Data::U8($a) => $body,
            $crate::tensor::Data::U16($a) => $body,
            $crate::tensor::Data::U32($a) => $body,
            $crate::tensor::Data::U64($a) => $body,
            $crate::tensor::Data::Bool($a) => $body,
            $crate::tensor::Data::Str($a) => $body,
            $crate::tensor::Data::C64($a) => $body,
            $crate::tensor::Data::C128($a) => $body,
        }
    };
}

/// Same as [`for_each_data!`], rebuilding a `Data` of the same variant from `$body`.
#[macro_export]
#[doc(hidden)]
macro_rules! map_data {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F32($a) => $crate::tensor::Data::F32($body),
            $crate::tensor::Data::F64($a) => $crate::tensor::Data::F64($body),
            $crate::tensor::Data::F16($a) => $crate::tensor::Data::F16($body),
            $crate::tensor::Data::BF16($a) => $crate::tensor::Data::BF16($body),
            $crate::tensor::Data::I8($a) => $crate::tensor::Data::I8($body),
            $crate::tensor::Data::I16($a) => $crate::tensor::Data::I16($body),
            $crate::tensor::Data::I32($a) => $crate::tensor::Data::I32($body),
            $crate::tensor::Data::I64($a) => $crate::tensor::Data::I64($body),
            $crate::tensor::Data::U8($a) => $crate::tensor::Data::U8($body),
            $crate::tensor::Data::U16($a) => $crate::tensor::Data::U16($body),
            $crate::tensor::Data::U32($a) => $crate::tensor::Data::U32($body),
            $crate::tensor::Data::U64($a) => $crate::tensor::Data::U64($body),
            $crate::tensor::Data::Bool($a) => $crate::tensor::Data::Bool($body),
            $crate::tensor::Data::Str($a) => $crate::tensor::Data::Str($body),
            $crate::tensor::Data::C64($a) => $crate::tensor::Data::C64($body),
            $crate::tensor::Data::C128($a) => $crate::tensor::Data::C128($body),
        }
    };
}

/// A typed tensor value.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    dtype: DataType,
    data: Data,
}

/// Bytes per element in `tensor_content`, for fixed-size dtypes.
pub fn dtype_size(dtype: DataType) -> Option<usize> {
    use DataType as D;
    Some(match dtype {
        D::DtBool | D::DtInt8 | D::DtUint8 | D::DtQint8 | D::DtQuint8 => 1,
        D::DtInt16 | D::DtUint16 | D::DtQint16 | D::DtQuint16 | D::DtHalf | D::DtBfloat16 => 2,
        D::DtFloat | D::DtInt32 | D::DtUint32 | D::DtQint32 => 4,
        D::DtDouble | D::DtInt64 | D::DtUint64 | D::DtComplex64 => 8,
        D::DtComplex128 => 16,
        _ => return None,
    })
}

/// Bytes one element takes in memory, in graphopt's storage for `dtype`: the fixed size for
/// numbers, and for strings the `Bytes` handle (its contents count separately).
pub fn memory_element_size(dtype: DataType) -> usize {
    match dtype {
        DataType::DtString => std::mem::size_of::<Bytes>(),
        other => dtype_size(other).unwrap_or(std::mem::size_of::<Bytes>()),
    }
}

/// The value type of a reference dtype (`DT_FLOAT_REF` -> `DT_FLOAT`).
pub fn base_dtype(dtype: i32) -> i32 {
    if dtype > 100 {
        dtype - 100
    } else {
        dtype
    }
}

fn dtype_of(value: i32) -> Result<DataType, TensorError> {
    DataType::try_from(base_dtype(value))
        .map_err(|_| TensorError::UnsupportedDtype(value.to_string()))
}

fn dtype_label(dtype: DataType) -> String {
    crate::dtype::dtype_name(dtype as i32)
}

/// Dimensions of a shape proto, checked.
pub fn dims_of(shape: Option<&TensorShapeProto>) -> Result<Vec<usize>, TensorError> {
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err(TensorError::Shape(
            "a tensor value cannot have an unknown rank".into(),
        ));
    }
    shape
        .dim
        .iter()
        .enumerate()
        .map(|(index, d)| {
            usize::try_from(d.size).map_err(|_| TensorError::BadDimension {
                index,
                size: d.size,
            })
        })
        .collect()
}

/// Shape proto for `dims`.
pub fn shape_proto(dims: &[usize]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| tensor_shape_proto::Dim {
                size: d as i64,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

/// Element count of `dims`, refusing shapes whose bytes exceed `limits`.
///
/// A shape with a zero has no elements, but its other dimensions still size strides and index
/// arithmetic (and ndarray refuses, by panicking, any shape whose non-zero dimensions multiply
/// past `isize::MAX`): such a shape is refused too, whatever the limit.
pub fn checked_elements(
    dims: &[usize],
    element_size: usize,
    limits: Limits,
) -> Result<usize, TensorError> {
    const ADDRESSABLE: u64 = isize::MAX as u64;
    let element_size = element_size.max(1) as u128;
    let product = dims
        .iter()
        .filter(|&&d| d != 0)
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    let elements = if dims.contains(&0) { 0 } else { product };
    if elements == 0 && product.saturating_mul(element_size) > u128::from(ADDRESSABLE) {
        return Err(TensorError::Unaddressable {
            product,
            max: ADDRESSABLE,
        });
    }
    let bytes = elements.saturating_mul(element_size);
    let limit = limits.max_bytes.min(ADDRESSABLE);
    if bytes > u128::from(limit) {
        return Err(TensorError::TooLarge {
            elements,
            bytes,
            limit,
        });
    }
    usize::try_from(elements).map_err(|_| TensorError::TooLarge {
        elements,
        bytes,
        limit: limits.max_bytes,
    })
}

fn array<T>(dims: &[usize], values: Vec<T>) -> Result<ArrayD<T>, TensorError> {
    ArrayD::from_shape_vec(IxDyn(dims), values).map_err(|e| TensorError::Shape(e.to_string()))
}

/// Expands typed values to `n` elements: none -> `zero`, fewer -> repeat the last.
fn fill<T: Clone>(mut values: Vec<T>, n: usize, zero: T) -> Result<Vec<T>, TensorError> {
    if values.len() > n {
        return Err(TensorError::TooManyValues {
            count: values.len(),
            elements: n,
        });
    }
    let last = values.last().cloned().unwrap_or(zero);
    values.resize(n, last);
    Ok(values)
}

fn from_le<T, const N: usize>(
    content: &[u8],
    n: usize,
    convert: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, TensorError> {
    if content.len() != n * N {
        return Err(TensorError::ContentSize {
            actual: content.len(),
            expected: n * N,
        });
    }
    Ok(content
        .chunks_exact(N)
        .map(|chunk| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(chunk);
            convert(bytes)
        })
        .collect())
}

/// Where a decoded tensor's `n` values come from: the little-endian `content` when it holds
/// any bytes (or there are no values to read), else the dtype's typed `*_val` field.
struct Values<'a> {
    content: &'a [u8],
    n: usize,
}

impl Values<'_> {
    /// The values: each element's content bytes through `from_bytes`, or `typed()` (called only
    /// when the content is empty) expanded to `n` as [`fill`] does.
    fn read<T: Clone, const N: usize>(
        &self,
        from_bytes: impl Fn([u8; N]) -> T,
        typed: impl FnOnce() -> Vec<T>,
        zero: T,
    ) -> Result<Vec<T>, TensorError> {
        if !self.content.is_empty() || self.n == 0 {
            from_le(self.content, self.n, from_bytes)
        } else {
            fill(typed(), self.n, zero)
        }
    }

    /// f16 or bf16 values: two content bytes each, or the low 16 bits of each `half_val`.
    fn half_floats<T: Clone>(
        &self,
        half_val: &[i32],
        from_bits: fn(u16) -> T,
    ) -> Result<Vec<T>, TensorError> {
        self.read(
            |b: [u8; 2]| from_bits(u16::from_le_bytes(b)),
            || half_val.iter().map(|&v| from_bits(v as u16)).collect(),
            from_bits(0),
        )
    }

    /// complex64 or complex128 values: `from_bytes` over each element's content bytes, or
    /// (real, imaginary) pairs of the typed field, which interleaves them.
    fn complexes<T: Copy + Default, const N: usize>(
        &self,
        interleaved: &[T],
        from_bytes: impl Fn([u8; N]) -> [T; 2],
    ) -> Result<Vec<[T; 2]>, TensorError> {
        self.read(
            from_bytes,
            || interleaved.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
            [T::default(); 2],
        )
    }
}

impl Tensor {
    /// A tensor of `dtype` over `data`; the storage must match the dtype.
    pub fn new(dtype: DataType, data: Data) -> Result<Self, TensorError> {
        let expected = storage_kind(dtype)?;
        if std::mem::discriminant(&expected) != std::mem::discriminant(&data) {
            return Err(TensorError::Shape(format!(
                "storage does not match dtype {}",
                dtype_label(dtype)
            )));
        }
        Ok(Tensor { dtype, data })
    }

    /// A tensor whose dtype follows from the storage.
    pub fn from_data(data: Data) -> Self {
        let dtype = match &data {
            Data::F32(_) => DataType::DtFloat,
            Data::F64(_) => DataType::DtDouble,
            Data::F16(_) => DataType::DtHalf,
            Data::BF16(_) => DataType::DtBfloat16,
            Data::I8(_) => DataType::DtInt8,
            Data::I16(_) => DataType::DtInt16,
            Data::I32(_) => DataType::DtInt32,
            Data::I64(_) => DataType::DtInt64,
            Data::U8(_) => DataType::DtUint8,
            Data::U16(_) => DataType::DtUint16,
            Data::U32(_) => DataType::DtUint32,
            Data::U64(_) => DataType::DtUint64,
            Data::Bool(_) => DataType::DtBool,
            Data::Str(_) => DataType::DtString,
            Data::C64(_) => DataType::DtComplex64,
            Data::C128(_) => DataType::DtComplex128,
        };
        Tensor { dtype, data }
    }

    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn into_data(self) -> Data {
        self.data
    }

    pub fn shape(&self) -> &[usize] {
        for_each_data!(&self.data, a => a.shape())
    }

    pub fn len(&self) -> usize {
        for_each_data!(&self.data, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the tensor costs in memory: elements times their in-memory size, plus string
    /// contents and [`budget::VALUE_OVERHEAD`].
    pub fn memory_bytes(&self) -> u64 {
        let elements = (self.len() as u64).saturating_mul(memory_element_size(self.dtype) as u64);
        let contents = match &self.data {
            Data::Str(a) => a.iter().map(|b| b.len() as u64).sum(),
            _ => 0,
        };
        elements
            .saturating_add(contents)
            .saturating_add(budget::VALUE_OVERHEAD)
    }

    /// Bytes the elements take (strings: their lengths).
    pub fn byte_size(&self) -> usize {
        match &self.data {
            Data::Str(a) => a.iter().map(Bytes::len).sum(),
            _ => self.len() * dtype_size(self.dtype).unwrap_or(0),
        }
    }

    /// The values of a floating-point tensor as f64 (any shape, flattened), or `None` for
    /// other element types.
    pub fn floats(&self) -> Option<Vec<f64>> {
        self.float_values().map(Iterator::collect)
    }

    /// [`Tensor::floats`] without the copy: the values in logical order, widened one at a
    /// time (for reading a large tensor without allocating eight bytes per element).
    pub fn float_values(&self) -> Option<Box<dyn Iterator<Item = f64> + '_>> {
        Some(match &self.data {
            Data::F32(a) => Box::new(a.iter().map(|&v| f64::from(v))),
            Data::F64(a) => Box::new(a.iter().copied()),
            Data::F16(a) => Box::new(a.iter().map(|v| v.to_f64())),
            Data::BF16(a) => Box::new(a.iter().map(|v| v.to_f64())),
            _ => return None,
        })
    }

    /// The values of an integer tensor as i64 (any shape, flattened), or `None` for other
    /// element types.
    pub fn integers(&self) -> Option<Vec<i64>> {
        match &self.data {
            Data::I32(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            Data::I64(a) => Some(a.iter().copied().collect()),
            Data::I16(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            Data::I8(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            Data::U8(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            Data::U16(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            Data::U32(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            _ => None,
        }
    }

    /// The dtype and dims of `proto` when [`Tensor::from_proto_with_limits`] would decode it
    /// (the budget aside), checked without decoding: every check decoding makes on a
    /// fixed-size dtype (known dtype, valid dims, size within `limits`, `tensor_content` of
    /// exactly the right length or no more typed values than elements). `None` when it would
    /// fail, and for strings and other dtypes only decoding can check.
    pub fn check_proto(proto: &TensorProto, limits: Limits) -> Option<(DataType, Vec<usize>)> {
        use DataType as D;
        let dtype = dtype_of(proto.dtype).ok()?;
        let width = dtype_size(dtype)?;
        storage_kind(dtype).ok()?;
        let dims = dims_of(proto.tensor_shape.as_ref()).ok()?;
        let n = checked_elements(&dims, memory_element_size(dtype), limits).ok()?;
        if !proto.tensor_content.is_empty() || n == 0 {
            return (proto.tensor_content.len() == n.checked_mul(width)?).then_some((dtype, dims));
        }
        let typed = match dtype {
            D::DtFloat => proto.float_val.len(),
            D::DtDouble => proto.double_val.len(),
            D::DtInt64 => proto.int64_val.len(),
            D::DtUint32 => proto.uint32_val.len(),
            D::DtUint64 => proto.uint64_val.len(),
            D::DtHalf | D::DtBfloat16 => proto.half_val.len(),
            D::DtBool => proto.bool_val.len(),
            D::DtComplex64 => proto.scomplex_val.len() / 2,
            D::DtComplex128 => proto.dcomplex_val.len() / 2,
            _ => proto.int_val.len(),
        };
        (typed <= n).then_some((dtype, dims))
    }

    /// Whether `proto` is exactly what [`Tensor::to_proto`] writes for its own value, so a
    /// folded copy of it can share its bytes instead of being decoded and encoded again: a
    /// non-empty, non-uniform little-endian `tensor_content` of a plain number dtype, the
    /// canonical shape, and no other field set. (Other forms are re-encoded when copied.)
    pub fn proto_is_canonical(proto: &TensorProto) -> bool {
        use DataType as D;
        let Ok(dtype) = DataType::try_from(proto.dtype) else {
            return false;
        };
        let width = match dtype {
            D::DtFloat | D::DtInt32 | D::DtUint32 => 4,
            D::DtDouble | D::DtInt64 | D::DtUint64 => 8,
            D::DtHalf | D::DtBfloat16 | D::DtInt16 | D::DtUint16 => 2,
            D::DtInt8 | D::DtUint8 => 1,
            _ => return false,
        };
        let Ok(dims) = dims_of(proto.tensor_shape.as_ref()) else {
            return false;
        };
        let Ok(n) = checked_elements(&dims, width, Limits::default()) else {
            return false;
        };
        let content = &proto.tensor_content;
        if n == 0 || n.checked_mul(width) != Some(content.len()) {
            return false;
        }
        if proto.tensor_shape.as_ref() != Some(&shape_proto(&dims)) {
            return false;
        }
        let rest = TensorProto {
            dtype: 0,
            tensor_shape: None,
            tensor_content: Bytes::new(),
            ..proto.clone()
        };
        if rest != TensorProto::default() {
            return false;
        }
        let first = &content[..width];
        !content.chunks_exact(width).all(|chunk| chunk == first)
    }

    /// Decodes a `TensorProto` with the default [`Limits`].
    pub fn from_proto(proto: &TensorProto) -> Result<Self, TensorError> {
        Self::from_proto_with_limits(proto, Limits::default())
    }

    /// Decodes a `TensorProto`, refusing shapes over `limits` and over the current budget.
    pub fn from_proto_with_limits(
        proto: &TensorProto,
        limits: Limits,
    ) -> Result<Self, TensorError> {
        let dtype = dtype_of(proto.dtype)?;
        let dims = dims_of(proto.tensor_shape.as_ref())?;
        let size = memory_element_size(dtype);
        let n = checked_elements(&dims, size, limits)?;
        budget::alloc_items(n, size, "a tensor")?;
        budget::work(n as u64)?;
        let source = Values {
            content: &proto.tensor_content,
            n,
        };
        macro_rules! decode {
            ($variant:ident, $ty:ty, $typed:expr, $zero:expr) => {
                Data::$variant(array(
                    &dims,
                    source.read(<$ty>::from_le_bytes, || $typed, $zero)?,
                )?)
            };
        }
        use DataType as D;
        let data = match dtype {
            D::DtFloat => decode!(F32, f32, proto.float_val.clone(), 0.0),
            D::DtDouble => decode!(F64, f64, proto.double_val.clone(), 0.0),
            D::DtInt32 | D::DtQint32 => decode!(I32, i32, proto.int_val.clone(), 0),
            D::DtInt16 | D::DtQint16 => decode!(
                I16,
                i16,
                proto.int_val.iter().map(|&v| v as i16).collect(),
                0
            ),
            D::DtInt8 | D::DtQint8 => {
                decode!(I8, i8, proto.int_val.iter().map(|&v| v as i8).collect(), 0)
            }
            D::DtUint8 | D::DtQuint8 => {
                decode!(U8, u8, proto.int_val.iter().map(|&v| v as u8).collect(), 0)
            }
            D::DtUint16 | D::DtQuint16 => decode!(
                U16,
                u16,
                proto.int_val.iter().map(|&v| v as u16).collect(),
                0
            ),
            D::DtInt64 => decode!(I64, i64, proto.int64_val.clone(), 0),
            D::DtUint32 => decode!(U32, u32, proto.uint32_val.clone(), 0),
            D::DtUint64 => decode!(U64, u64, proto.uint64_val.clone(), 0),
            D::DtHalf => Data::F16(array(
                &dims,
                source.half_floats(&proto.half_val, f16::from_bits)?,
            )?),
            D::DtBfloat16 => Data::BF16(array(
                &dims,
                source.half_floats(&proto.half_val, bf16::from_bits)?,
            )?),
            D::DtBool => Data::Bool(array(
                &dims,
                source.read(|b: [u8; 1]| b[0] != 0, || proto.bool_val.clone(), false)?,
            )?),
            D::DtComplex64 => Data::C64(array(
                &dims,
                source.complexes(&proto.scomplex_val, |b: [u8; 8]| {
                    complex_parts(b).map(f32::from_le_bytes)
                })?,
            )?),
            D::DtComplex128 => Data::C128(array(
                &dims,
                source.complexes(&proto.dcomplex_val, |b: [u8; 16]| {
                    complex_parts(b).map(f64::from_le_bytes)
                })?,
            )?),
            D::DtString => {
                // Strings are never packed into tensor_content in a TensorProto.
                Data::Str(array(
                    &dims,
                    fill(proto.string_val.clone(), n, Bytes::new())?,
                )?)
            }
            other => return Err(TensorError::UnsupportedDtype(dtype_label(other))),
        };
        Ok(Tensor { dtype, data })
    }

    /// The proto with every value in `tensor_content` (little-endian, as TensorFlow lays it
    /// out), even where [`Tensor::to_proto`] would use a compact `*_val` field: some importers
    /// (OpenCV's) read certain Consts only through `tensor_content`. Strings have no
    /// `tensor_content` form and keep `string_val`.
    pub fn to_proto_as_content(&self) -> TensorProto {
        let mut proto = self.to_proto();
        let mut content: Vec<u8> = Vec::with_capacity(self.byte_size());
        macro_rules! bytes_of {
            ($values:expr, $to_bytes:expr) => {
                for v in $values {
                    content.extend_from_slice(&$to_bytes(v));
                }
            };
        }
        match &self.data {
            Data::F32(a) => bytes_of!(a.iter(), |v: &f32| canonical_nan_f32(*v).to_le_bytes()),
            Data::F64(a) => bytes_of!(a.iter(), |v: &f64| canonical_nan_f64(*v).to_le_bytes()),
            Data::F16(a) => bytes_of!(a.iter(), |v: &f16| canonical_nan_f16(*v)
                .to_bits()
                .to_le_bytes()),
            Data::BF16(a) => bytes_of!(a.iter(), |v: &bf16| canonical_nan_bf16(*v)
                .to_bits()
                .to_le_bytes()),
            Data::I8(a) => bytes_of!(a.iter(), |v: &i8| v.to_le_bytes()),
            Data::I16(a) => bytes_of!(a.iter(), |v: &i16| v.to_le_bytes()),
            Data::I32(a) => bytes_of!(a.iter(), |v: &i32| v.to_le_bytes()),
            Data::I64(a) => bytes_of!(a.iter(), |v: &i64| v.to_le_bytes()),
            Data::U8(a) => bytes_of!(a.iter(), |v: &u8| v.to_le_bytes()),
            Data::U16(a) => bytes_of!(a.iter(), |v: &u16| v.to_le_bytes()),
            Data::U32(a) => bytes_of!(a.iter(), |v: &u32| v.to_le_bytes()),
            Data::U64(a) => bytes_of!(a.iter(), |v: &u64| v.to_le_bytes()),
            Data::Bool(a) => bytes_of!(a.iter(), |v: &bool| [u8::from(*v)]),
            // Real part, then imaginary part.
            Data::C64(a) => bytes_of!(a.iter().flatten(), |v: &f32| canonical_nan_f32(*v)
                .to_le_bytes()),
            Data::C128(a) => bytes_of!(a.iter().flatten(), |v: &f64| canonical_nan_f64(*v)
                .to_le_bytes()),
            Data::Str(_) => return proto,
        }
        let dims = proto.tensor_shape.take();
        TensorProto {
            dtype: proto.dtype,
            tensor_shape: dims,
            tensor_content: Bytes::from(content),
            ..Default::default()
        }
    }

    /// Encodes to a compact canonical `TensorProto`: no values for an empty tensor, a single
    /// typed value when every element is the same (TensorFlow's fill shorthand), raw
    /// little-endian `tensor_content` otherwise; strings always as `string_val`.
    pub fn to_proto(&self) -> TensorProto {
        let dims = self.shape().to_vec();
        let mut proto = TensorProto {
            dtype: self.dtype as i32,
            tensor_shape: Some(shape_proto(&dims)),
            ..Default::default()
        };
        if self.is_empty() {
            return proto;
        }
        macro_rules! encode {
            ($a:expr, $field:ident, $to_field:expr, $to_bytes:expr) => {{
                let first = $a.iter().next().cloned();
                let uniform = match &first {
                    Some(f) => $a.iter().all(|v| $to_bytes(v) == $to_bytes(f)),
                    None => false,
                };
                match first {
                    Some(f) if uniform => proto.$field = vec![$to_field(f)],
                    _ => {
                        let mut content = Vec::with_capacity(self.byte_size());
                        for v in $a.iter() {
                            content.extend_from_slice(&$to_bytes(v));
                        }
                        proto.tensor_content = Bytes::from(content);
                    }
                }
            }};
        }
        match &self.data {
            Data::F32(a) => encode!(a, float_val, canonical_nan_f32, |v: &f32| {
                canonical_nan_f32(*v).to_le_bytes()
            }),
            Data::F64(a) => encode!(a, double_val, canonical_nan_f64, |v: &f64| {
                canonical_nan_f64(*v).to_le_bytes()
            }),
            Data::I32(a) => encode!(a, int_val, |v| v, |v: &i32| v.to_le_bytes()),
            Data::I16(a) => encode!(a, int_val, i32::from, |v: &i16| v.to_le_bytes()),
            Data::I8(a) => encode!(a, int_val, i32::from, |v: &i8| v.to_le_bytes()),
            Data::U8(a) => encode!(a, int_val, i32::from, |v: &u8| v.to_le_bytes()),
            Data::U16(a) => encode!(a, int_val, i32::from, |v: &u16| v.to_le_bytes()),
            Data::I64(a) => encode!(a, int64_val, |v| v, |v: &i64| v.to_le_bytes()),
            Data::U32(a) => encode!(a, uint32_val, |v| v, |v: &u32| v.to_le_bytes()),
            Data::U64(a) => encode!(a, uint64_val, |v| v, |v: &u64| v.to_le_bytes()),
            Data::F16(a) => encode!(
                a,
                half_val,
                |v: f16| i32::from(canonical_nan_f16(v).to_bits()),
                |v: &f16| canonical_nan_f16(*v).to_bits().to_le_bytes()
            ),
            Data::BF16(a) => encode!(
                a,
                half_val,
                |v: bf16| i32::from(canonical_nan_bf16(v).to_bits()),
                |v: &bf16| canonical_nan_bf16(*v).to_bits().to_le_bytes()
            ),
            Data::Bool(a) => encode!(a, bool_val, |v| v, |v: &bool| [u8::from(*v)]),
            Data::C64(a) => {
                proto.scomplex_val = a.iter().flatten().copied().map(canonical_nan_f32).collect();
            }
            Data::C128(a) => {
                proto.dcomplex_val = a.iter().flatten().copied().map(canonical_nan_f64).collect();
            }
            Data::Str(a) => proto.string_val = a.iter().cloned().collect(),
        }
        proto
    }
}

// A NaN's bits depend on the machine that made it: 0.0 / 0.0 is 0xffc00000 on x86 and
// 0x7fc00000 on ARM. Values written out (a folded Const) carry one NaN, the positive quiet
// one, so an artifact is the same on every machine; no kernel reads a NaN's payload.
fn canonical_nan_f32(v: f32) -> f32 {
    if v.is_nan() {
        f32::from_bits(0x7fc0_0000)
    } else {
        v
    }
}
fn canonical_nan_f64(v: f64) -> f64 {
    if v.is_nan() {
        f64::from_bits(0x7ff8_0000_0000_0000)
    } else {
        v
    }
}
fn canonical_nan_f16(v: f16) -> f16 {
    if v.is_nan() {
        f16::from_bits(0x7e00)
    } else {
        v
    }
}
fn canonical_nan_bf16(v: bf16) -> bf16 {
    if v.is_nan() {
        bf16::from_bits(0x7fc0)
    } else {
        v
    }
}

/// A complex number's content bytes split into its real and imaginary parts' bytes.
fn complex_parts<const N: usize, const W: usize>(bytes: [u8; N]) -> [[u8; W]; 2] {
    let mut parts = [[0u8; W]; 2];
    parts[0].copy_from_slice(&bytes[..W]);
    parts[1].copy_from_slice(&bytes[W..]);
    parts
}

/// An empty storage of the kind `dtype` uses (for checking a dtype/storage pair).
fn storage_kind(dtype: DataType) -> Result<Data, TensorError> {
    use DataType as D;
    let empty = IxDyn(&[0]);
    Ok(match dtype {
        D::DtFloat => Data::F32(ArrayD::default(empty)),
        D::DtDouble => Data::F64(ArrayD::default(empty)),
        D::DtHalf => Data::F16(ArrayD::default(empty)),
        D::DtBfloat16 => Data::BF16(ArrayD::default(empty)),
        D::DtInt8 | D::DtQint8 => Data::I8(ArrayD::default(empty)),
        D::DtInt16 | D::DtQint16 => Data::I16(ArrayD::default(empty)),
        D::DtInt32 | D::DtQint32 => Data::I32(ArrayD::default(empty)),
        D::DtInt64 => Data::I64(ArrayD::default(empty)),
        D::DtUint8 | D::DtQuint8 => Data::U8(ArrayD::default(empty)),
        D::DtUint16 | D::DtQuint16 => Data::U16(ArrayD::default(empty)),
        D::DtUint32 => Data::U32(ArrayD::default(empty)),
        D::DtUint64 => Data::U64(ArrayD::default(empty)),
        D::DtBool => Data::Bool(ArrayD::default(empty)),
        D::DtString => Data::Str(ArrayD::default(empty)),
        D::DtComplex64 => Data::C64(ArrayD::default(empty)),
        D::DtComplex128 => Data::C128(ArrayD::default(empty)),
        other => return Err(TensorError::UnsupportedDtype(dtype_label(other))),
    })
}
