//! TensorProto <-> Tensor for every dtype and both encodings; hostile shapes are refused.

mod common;

use bytes::Bytes;
use graphopt_core::proto::{DataType, TensorProto};
use graphopt_core::tensor::{shape_proto, Data, Limits, Tensor, TensorError};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use prost::Message;

fn proto(dtype: DataType, dims: &[usize]) -> TensorProto {
    TensorProto {
        dtype: dtype as i32,
        tensor_shape: Some(shape_proto(dims)),
        ..Default::default()
    }
}

fn arr<T: Clone>(dims: &[usize], values: &[T]) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(dims), values.to_vec()).unwrap()
}

#[test]
fn tensorflow_written_tensors_decode() {
    for name in common::MODELS {
        let bytes = std::fs::read(
            common::fixtures()
                .join("data")
                .join(name)
                .join("input_0.pb"),
        )
        .unwrap();
        let proto = TensorProto::decode(bytes.as_slice()).unwrap();
        let tensor = Tensor::from_proto(&proto).unwrap();
        let expected = &common::expected(name)["inputs"][0]["shape"];
        let dims: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).collect();
        assert_eq!(serde_json::json!(dims), *expected, "{name}");
        assert_eq!(tensor.dtype(), DataType::DtFloat);
        // Seeded standard normal values: not all equal, finite.
        let Data::F32(values) = tensor.data() else {
            panic!("{name}: not f32")
        };
        assert!(values.iter().all(|v| v.is_finite()));
        let first = values.iter().next().copied().unwrap();
        assert!(values.iter().any(|&v| v != first));
        // Our canonical encoding decodes to the same tensor.
        assert_eq!(Tensor::from_proto(&tensor.to_proto()).unwrap(), tensor);
    }
}

#[test]
fn every_dtype_round_trips_through_both_encodings() {
    let dims = [2, 3];
    let cases = vec![
        Tensor::from_data(Data::F32(arr(
            &dims,
            &[1.5, -2.0, 0.0, f32::INFINITY, 1e-30, -0.0],
        ))),
        Tensor::from_data(Data::F64(arr(&dims, &[1.5, -2.0, 0.0, 3.0, 1e-300, 7.0]))),
        Tensor::from_data(Data::F16(arr(
            &dims,
            &[
                f16::from_f32(1.5),
                f16::ONE,
                f16::ZERO,
                f16::NEG_ONE,
                f16::MAX,
                f16::MIN,
            ],
        ))),
        Tensor::from_data(Data::BF16(arr(
            &dims,
            &[
                bf16::from_f32(1.5),
                bf16::ONE,
                bf16::ZERO,
                bf16::NEG_ONE,
                bf16::MAX,
                bf16::MIN,
            ],
        ))),
        Tensor::from_data(Data::I8(arr(&dims, &[1, -2, 127, -128, 0, 5]))),
        Tensor::from_data(Data::I16(arr(&dims, &[1, -2, i16::MAX, i16::MIN, 0, 5]))),
        Tensor::from_data(Data::I32(arr(&dims, &[1, -2, i32::MAX, i32::MIN, 0, 5]))),
        Tensor::from_data(Data::I64(arr(&dims, &[1, -2, i64::MAX, i64::MIN, 0, 5]))),
        Tensor::from_data(Data::U8(arr(&dims, &[1, 2, 255, 0, 7, 5]))),
        Tensor::from_data(Data::U16(arr(&dims, &[1, 2, u16::MAX, 0, 7, 5]))),
        Tensor::from_data(Data::U32(arr(&dims, &[1, 2, u32::MAX, 0, 7, 5]))),
        Tensor::from_data(Data::U64(arr(&dims, &[1, 2, u64::MAX, 0, 7, 5]))),
        Tensor::from_data(Data::Bool(arr(
            &dims,
            &[true, false, true, true, false, false],
        ))),
        Tensor::from_data(Data::C64(arr(
            &dims,
            &[
                [1.0, 2.0],
                [0.0, -1.0],
                [3.0, 0.5],
                [0.0, 0.0],
                [1.0, 1.0],
                [2.0, 2.0],
            ],
        ))),
        Tensor::from_data(Data::C128(arr(
            &dims,
            &[
                [1.0, 2.0],
                [0.0, -1.0],
                [3.0, 0.5],
                [0.0, 0.0],
                [1.0, 1.0],
                [2.0, 2.0],
            ],
        ))),
        Tensor::from_data(Data::Str(arr(
            &dims,
            &[
                Bytes::from_static(b"a"),
                Bytes::new(),
                Bytes::from_static(b"\x00\xff"),
                Bytes::from_static(b"dd"),
                Bytes::from_static(b"e"),
                Bytes::from_static(b"f"),
            ],
        ))),
        Tensor::new(
            DataType::DtQuint8,
            Data::U8(arr(&dims, &[0, 1, 2, 3, 4, 255])),
        )
        .unwrap(),
        Tensor::new(
            DataType::DtQint32,
            Data::I32(arr(&dims, &[0, 1, 2, 3, 4, -5])),
        )
        .unwrap(),
    ];
    for tensor in cases {
        let canonical = tensor.to_proto();
        let back = Tensor::from_proto(&canonical).unwrap();
        assert_eq!(back.dtype(), tensor.dtype());
        assert_eq!(
            format!("{:?}", back.data()),
            format!("{:?}", tensor.data()),
            "{:?}",
            tensor.dtype()
        );
        // The typed-field encoding TensorFlow's Python writes for small tensors.
        let mut typed = proto(tensor.dtype(), tensor.shape());
        match tensor.data() {
            Data::F32(a) => typed.float_val = a.iter().copied().collect(),
            Data::F64(a) => typed.double_val = a.iter().copied().collect(),
            Data::F16(a) => typed.half_val = a.iter().map(|v| i32::from(v.to_bits())).collect(),
            Data::BF16(a) => typed.half_val = a.iter().map(|v| i32::from(v.to_bits())).collect(),
            Data::I8(a) => typed.int_val = a.iter().map(|&v| i32::from(v)).collect(),
            Data::I16(a) => typed.int_val = a.iter().map(|&v| i32::from(v)).collect(),
            Data::I32(a) => typed.int_val = a.iter().copied().collect(),
            Data::U8(a) => typed.int_val = a.iter().map(|&v| i32::from(v)).collect(),
            Data::U16(a) => typed.int_val = a.iter().map(|&v| i32::from(v)).collect(),
            Data::I64(a) => typed.int64_val = a.iter().copied().collect(),
            Data::U32(a) => typed.uint32_val = a.iter().copied().collect(),
            Data::U64(a) => typed.uint64_val = a.iter().copied().collect(),
            Data::Bool(a) => typed.bool_val = a.iter().copied().collect(),
            Data::C64(a) => typed.scomplex_val = a.iter().flatten().copied().collect(),
            Data::C128(a) => typed.dcomplex_val = a.iter().flatten().copied().collect(),
            Data::Str(a) => typed.string_val = a.iter().cloned().collect(),
        }
        let from_typed = Tensor::from_proto(&typed).unwrap();
        assert_eq!(
            format!("{:?}", from_typed.data()),
            format!("{:?}", tensor.data()),
            "{:?}",
            tensor.dtype()
        );
    }
}

#[test]
fn shorthand_repeats_the_last_value_and_canonical_form_uses_it() {
    let mut p = proto(DataType::DtFloat, &[2, 3]);
    p.float_val = vec![1.0, 2.0];
    let t = Tensor::from_proto(&p).unwrap();
    assert_eq!(
        t.data(),
        &Data::F32(arr(&[2, 3], &[1.0, 2.0, 2.0, 2.0, 2.0, 2.0]))
    );
    let empty_values = Tensor::from_proto(&proto(DataType::DtInt32, &[4])).unwrap();
    assert_eq!(empty_values.data(), &Data::I32(arr(&[4], &[0, 0, 0, 0])));
    // A uniform tensor encodes as one typed value, not a million bytes.
    let big = Tensor::from_data(Data::F32(ArrayD::from_elem(IxDyn(&[1000, 1000]), 0.5)));
    let encoded = big.to_proto();
    assert_eq!(encoded.float_val, vec![0.5]);
    assert!(encoded.tensor_content.is_empty());
    assert!(encoded.encoded_len() < 64);
    assert_eq!(Tensor::from_proto(&encoded).unwrap(), big);
    // A scalar.
    let scalar = Tensor::from_data(Data::I64(arr(&[], &[42])));
    assert_eq!(scalar.to_proto().int64_val, vec![42]);
    assert_eq!(Tensor::from_proto(&scalar.to_proto()).unwrap(), scalar);
}

#[test]
fn hostile_tensors_are_refused_without_allocating() {
    let huge = proto(DataType::DtFloat, &[1 << 20, 1 << 20, 1 << 20]);
    assert!(matches!(
        Tensor::from_proto(&huge),
        Err(TensorError::TooLarge { .. })
    ));
    let mut negative = proto(DataType::DtFloat, &[2]);
    negative.tensor_shape.as_mut().unwrap().dim[0].size = -3;
    assert!(matches!(
        Tensor::from_proto(&negative),
        Err(TensorError::BadDimension { index: 0, size: -3 })
    ));
    let mut short = proto(DataType::DtFloat, &[4]);
    short.tensor_content = Bytes::from_static(&[0; 12]);
    assert!(matches!(
        Tensor::from_proto(&short),
        Err(TensorError::ContentSize {
            actual: 12,
            expected: 16
        })
    ));
    let mut too_many = proto(DataType::DtInt32, &[2]);
    too_many.int_val = vec![1, 2, 3];
    assert!(matches!(
        Tensor::from_proto(&too_many),
        Err(TensorError::TooManyValues { .. })
    ));
    let resource = TensorProto {
        dtype: DataType::DtResource as i32,
        ..Default::default()
    };
    assert!(matches!(
        Tensor::from_proto(&resource),
        Err(TensorError::UnsupportedDtype(_))
    ));
    let small_limit = Limits { max_bytes: 15 };
    assert!(Tensor::from_proto_with_limits(&proto(DataType::DtFloat, &[4]), small_limit).is_err());
    assert!(Tensor::from_proto_with_limits(&proto(DataType::DtFloat, &[3]), small_limit).is_ok());
}
