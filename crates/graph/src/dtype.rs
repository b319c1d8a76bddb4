//! Element types and run-time tensor values.

use ndarray::{ArrayBase, ArrayD, ArrayView, CowArray, Dimension, IxDyn, OwnedRepr};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The element type of a tensor, named as TensorFlow names it (`float32`, `int64`, ...).
///
/// ```
/// use tensorgraph_graph::DType;
/// assert_eq!(DType::F32.to_string(), "float32");
/// assert!(DType::F64.is_float());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
    Bool,
    /// Byte strings (TF's `tf.string`): what summary ops return, serialized protos.
    String,
}

impl DType {
    /// TensorFlow's name of this dtype.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::String => "string",
        }
    }

    /// True for `F32` and `F64`, the dtypes gradients flow through.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for `I32` and `I64`.
    pub fn is_integer(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A concrete tensor: what a session returns for a fetch and takes for a feed.
///
/// Any owned ndarray of a supported element type converts into a `Value`:
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{DType, Value};
/// let v: Value = array![[1.0f32, 2.0], [3.0, 4.0]].into();
/// assert_eq!(v.dtype(), DType::F32);
/// assert_eq!(v.shape(), &[2, 2]);
/// assert_eq!(v.as_f32().unwrap()[[1, 0]], 3.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    Bool(ArrayD<bool>),
    String(ArrayD<Vec<u8>>),
}

/// Calls `$body` with `$a` bound to the ndarray inside a [`Value`], whatever its dtype.
#[macro_export]
macro_rules! with_array {
    ($value:expr, $a:ident => $body:expr) => {
        match $value {
            $crate::Value::F32($a) => $body,
            $crate::Value::F64($a) => $body,
            $crate::Value::I32($a) => $body,
            $crate::Value::I64($a) => $body,
            $crate::Value::Bool($a) => $body,
            $crate::Value::String($a) => $body,
        }
    };
}

impl Value {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::F64(_) => DType::F64,
            Value::I32(_) => DType::I32,
            Value::I64(_) => DType::I64,
            Value::Bool(_) => DType::Bool,
            Value::String(_) => DType::String,
        }
    }

    /// The concrete shape.
    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the elements lie in row-major order, contiguous (kernels read such values as
    /// slices).
    pub fn is_standard_layout(&self) -> bool {
        with_array!(self, a => a.is_standard_layout())
    }

    /// The same tensor laid out row-major (a copy only if it is not already).
    pub fn to_standard_layout(&self) -> Value {
        with_array!(self, a => Value::from(a.as_standard_layout().into_owned()))
    }

    /// A value of `dtype` and `shape` with every element equal to `x` (non-zero is `true` for bool).
    pub fn filled(dtype: DType, shape: &[usize], x: f64) -> Value {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Value::F32(ArrayD::from_elem(s, x as f32)),
            DType::F64 => Value::F64(ArrayD::from_elem(s, x)),
            DType::I32 => Value::I32(ArrayD::from_elem(s, x as i32)),
            DType::I64 => Value::I64(ArrayD::from_elem(s, x as i64)),
            DType::Bool => Value::Bool(ArrayD::from_elem(s, x != 0.0)),
            // Strings have no numbers: empty ones (TF's zeros of a string tensor).
            DType::String => Value::String(ArrayD::from_elem(s, Vec::new())),
        }
    }

    /// [`Value::filled`] for shapes that come from outside (a graph file's `Fill`): an element
    /// count that overflows or memory the allocator refuses is an error, not an abort.
    pub fn try_filled(dtype: DType, shape: &[usize], x: f64) -> Result<Value, String> {
        fn full<T: Clone>(shape: &[usize], x: T) -> Result<ArrayD<T>, String> {
            let v = try_vec(checked_len(shape)?, x)?;
            ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| e.to_string())
        }
        Ok(match dtype {
            DType::F32 => Value::F32(full(shape, x as f32)?),
            DType::F64 => Value::F64(full(shape, x)?),
            DType::I32 => Value::I32(full(shape, x as i32)?),
            DType::I64 => Value::I64(full(shape, x as i64)?),
            DType::Bool => Value::Bool(full(shape, x != 0.0)?),
            DType::String => Value::String(full(shape, Vec::new())?),
        })
    }

    /// The single element of a tensor with one element, as f64 (bool as 0 or 1).
    pub fn scalar_f64(&self) -> Option<f64> {
        if self.len() != 1 {
            return None;
        }
        Some(match self {
            Value::F32(a) => a.iter().next().copied()? as f64,
            Value::F64(a) => *a.iter().next()?,
            Value::I32(a) => *a.iter().next()? as f64,
            Value::I64(a) => *a.iter().next()? as f64,
            Value::Bool(a) => f64::from(u8::from(*a.iter().next()?)),
            Value::String(_) => return None,
        })
    }

    /// Every element converted to f64 (bool as 0 or 1, a string as NaN), in logical order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Value::F32(a) => a.iter().map(|&x| x as f64).collect(),
            Value::F64(a) => a.iter().copied().collect(),
            Value::I32(a) => a.iter().map(|&x| x as f64).collect(),
            Value::I64(a) => a.iter().map(|&x| x as f64).collect(),
            Value::Bool(a) => a.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Value::String(a) => a.iter().map(|_| f64::NAN).collect(),
        }
    }
}

macro_rules! value_accessors {
    ($($variant:ident $t:ty, $as_fn:ident, $into_fn:ident;)*) => {
        impl Value {
            $(
                #[doc = concat!("The array if this value holds `", stringify!($t), "` elements.")]
                pub fn $as_fn(&self) -> Option<&ArrayD<$t>> {
                    match self {
                        Value::$variant(a) => Some(a),
                        _ => None,
                    }
                }
                #[doc = concat!("The array if this value holds `", stringify!($t), "` elements, else the value back.")]
                pub fn $into_fn(self) -> Result<ArrayD<$t>, Value> {
                    match self {
                        Value::$variant(a) => Ok(a),
                        other => Err(other),
                    }
                }
            )*
        }
        $(
            impl<D: Dimension> From<ArrayBase<OwnedRepr<$t>, D>> for Value {
                fn from(a: ArrayBase<OwnedRepr<$t>, D>) -> Value {
                    Value::$variant(a.into_dyn())
                }
            }
            impl From<$t> for Value {
                fn from(x: $t) -> Value {
                    Value::$variant(ArrayD::from_elem(IxDyn(&[]), x))
                }
            }
            impl Element for $t {
                const DTYPE: DType = DType::$variant;
                fn wrap(a: ArrayD<$t>) -> Value {
                    Value::$variant(a)
                }
                fn unwrap_ref(v: &Value) -> Option<&ArrayD<$t>> {
                    v.$as_fn()
                }
                fn unwrap_mut(v: &mut Value) -> Option<&mut ArrayD<$t>> {
                    match v {
                        Value::$variant(a) => Some(a),
                        _ => None,
                    }
                }
            }
        )*
    };
}

value_accessors! {
    F32 f32, as_f32, into_f32;
    F64 f64, as_f64, into_f64;
    I32 i32, as_i32, into_i32;
    I64 i64, as_i64, into_i64;
    Bool bool, as_bool, into_bool;
}

impl Value {
    /// The byte strings if this value holds strings.
    pub fn as_string(&self) -> Option<&ArrayD<Vec<u8>>> {
        match self {
            Value::String(a) => Some(a),
            _ => None,
        }
    }
}

impl<D: Dimension> From<ArrayBase<OwnedRepr<Vec<u8>>, D>> for Value {
    fn from(a: ArrayBase<OwnedRepr<Vec<u8>>, D>) -> Value {
        Value::String(a.into_dyn())
    }
}

/// A Rust element type with a [`DType`]: the bridge between generic kernels and [`Value`].
pub trait Element: Copy + Send + Sync + fmt::Debug + PartialEq + 'static {
    /// The dtype of this element type.
    const DTYPE: DType;
    /// Wraps an array into a [`Value`].
    fn wrap(a: ArrayD<Self>) -> Value;
    /// The array inside `v` if its dtype is `Self::DTYPE`.
    fn unwrap_ref(v: &Value) -> Option<&ArrayD<Self>>;
    /// The mutable array inside `v` if its dtype is `Self::DTYPE`.
    fn unwrap_mut(v: &mut Value) -> Option<&mut ArrayD<Self>>;
}

/// The number of elements of `shape`, or an error if it overflows.
pub fn checked_len(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {} has more elements than memory can address", crate::fmt_dims(shape)))
}

/// `n` copies of `x`, or an error if the allocator refuses the memory.
pub fn try_vec<T: Clone>(n: usize, x: T) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("cannot allocate {n} elements of {} bytes", std::mem::size_of::<T>()))?;
    v.resize(n, x);
    Ok(v)
}

/// A fetched scalar as a Rust number (`let acc: f32 = sess.run(&accuracy, &feeds)?.try_into()?`):
/// the dtype must match and the value hold one element.
macro_rules! scalar_conversions {
    ($($t:ty, $variant:ident, $name:literal;)*) => {$(
        impl TryFrom<Value> for $t {
            type Error = crate::Error;
            fn try_from(v: Value) -> Result<$t, crate::Error> {
                match &v {
                    Value::$variant(a) if a.len() == 1 => Ok(*a.iter().next().expect("one element")),
                    _ => Err(crate::Error::ValueType {
                        expected: concat!("a ", $name, " scalar").into(),
                        got: format!("{} {}", v.dtype(), crate::fmt_dims(v.shape())),
                    }),
                }
            }
        }
    )*};
}

/// A fetched value as an ndarray of the caller's element type and rank
/// (`let w: Array2<f32> = sess.run(&w, &[])?.try_into()?`; `ArrayD` for any rank): the dtype
/// and the rank must match.
macro_rules! array_conversions {
    ($($t:ty, $variant:ident, $name:literal;)*) => {$(
        impl<D: Dimension> TryFrom<Value> for ArrayBase<OwnedRepr<$t>, D> {
            type Error = crate::Error;
            fn try_from(v: Value) -> Result<Self, crate::Error> {
                let mismatch = |dtype: DType, shape: &[usize]| crate::Error::ValueType {
                    expected: match D::NDIM {
                        Some(rank) => format!("a {} array of rank {rank}", $name),
                        None => format!("a {} array", $name),
                    },
                    got: format!("{dtype} {}", crate::fmt_dims(shape)),
                };
                match v {
                    Value::$variant(a) if D::NDIM.is_none_or(|rank| rank == a.ndim()) => {
                        a.into_dimensionality::<D>().map_err(|_| mismatch(DType::$variant, &[]))
                    }
                    other => Err(mismatch(other.dtype(), other.shape())),
                }
            }
        }
    )*};
}

array_conversions! {
    f32, F32, "float32";
    f64, F64, "float64";
    i32, I32, "int32";
    i64, I64, "int64";
    bool, Bool, "bool";
}

scalar_conversions! {
    f32, F32, "float32";
    f64, F64, "float64";
    i32, I32, "int32";
    i64, I64, "int64";
    bool, Bool, "bool";
}

/// A value fed to a placeholder, owned or borrowed: `feed_dict={X: X_batch}`'s right-hand side.
/// Built from an owned array or [`Value`] (moved in), or from a reference to one or an
/// `ArrayView` (borrowed: evaluating a test set does not copy it first).
///
/// ```
/// use ndarray::{array, s};
/// use tensorgraph_graph::{DType, Feed};
/// let images = array![[0.0f32, 1.0], [2.0, 3.0]];
/// let borrowed = Feed::from(&images); // no copy
/// let first_row = Feed::from(images.slice(s![..1, ..])); // a view, no copy
/// let owned = Feed::from(images.clone());
/// assert_eq!((borrowed.dtype(), first_row.shape(), owned.shape()), (DType::F32, &[1, 2][..], &[2, 2][..]));
/// ```
#[derive(Clone, Debug)]
pub enum Feed<'a> {
    F32(CowArray<'a, f32, IxDyn>),
    F64(CowArray<'a, f64, IxDyn>),
    I32(CowArray<'a, i32, IxDyn>),
    I64(CowArray<'a, i64, IxDyn>),
    Bool(CowArray<'a, bool, IxDyn>),
    String(CowArray<'a, Vec<u8>, IxDyn>),
}

/// Calls `$body` with `$a` bound to the array inside a [`Feed`], whatever its dtype.
macro_rules! with_feed {
    ($value:expr, $a:ident => $body:expr) => {
        match $value {
            Feed::F32($a) => $body,
            Feed::F64($a) => $body,
            Feed::I32($a) => $body,
            Feed::I64($a) => $body,
            Feed::Bool($a) => $body,
            Feed::String($a) => $body,
        }
    };
}

impl Feed<'_> {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Feed::F32(_) => DType::F32,
            Feed::F64(_) => DType::F64,
            Feed::I32(_) => DType::I32,
            Feed::I64(_) => DType::I64,
            Feed::Bool(_) => DType::Bool,
            Feed::String(_) => DType::String,
        }
    }

    /// The concrete shape.
    pub fn shape(&self) -> &[usize] {
        with_feed!(self, a => a.shape())
    }

    /// The fed value as an owned [`Value`] (a copy when borrowed).
    pub fn to_value(&self) -> Value {
        with_feed!(self, a => Value::from(a.to_owned()))
    }
}

impl From<Value> for Feed<'_> {
    fn from(v: Value) -> Self {
        with_array!(v, a => Feed::from(a))
    }
}

impl<'a> From<&'a Value> for Feed<'a> {
    fn from(v: &'a Value) -> Self {
        with_array!(v, a => Feed::from(a.view()))
    }
}

macro_rules! feed_conversions {
    ($($variant:ident $t:ty;)*) => {$(
        impl<D: Dimension> From<ArrayBase<OwnedRepr<$t>, D>> for Feed<'_> {
            fn from(a: ArrayBase<OwnedRepr<$t>, D>) -> Self {
                Feed::$variant(CowArray::from(a.into_dyn()))
            }
        }
        impl<'a, D: Dimension> From<ArrayView<'a, $t, D>> for Feed<'a> {
            fn from(a: ArrayView<'a, $t, D>) -> Self {
                Feed::$variant(CowArray::from(a.into_dyn()))
            }
        }
        impl<'a, D: Dimension> From<&'a ArrayBase<OwnedRepr<$t>, D>> for Feed<'a> {
            fn from(a: &'a ArrayBase<OwnedRepr<$t>, D>) -> Self {
                Feed::$variant(CowArray::from(a.view().into_dyn()))
            }
        }
        impl<'a, D: Dimension> From<&ArrayView<'a, $t, D>> for Feed<'a> {
            fn from(a: &ArrayView<'a, $t, D>) -> Self {
                Feed::$variant(CowArray::from(a.clone().into_dyn()))
            }
        }
        impl From<$t> for Feed<'_> {
            fn from(x: $t) -> Self {
                Feed::from(ndarray::arr0(x))
            }
        }
    )*};
}

feed_conversions! {
    F32 f32;
    F64 f64;
    I32 i32;
    I64 i64;
    Bool bool;
    String Vec<u8>;
}
