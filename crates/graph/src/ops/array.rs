//! Sources and shape manipulation (`tf.placeholder`, `tf.constant`, `tf.reshape`, ...).

use super::{invalid, norm_axes, norm_axis};
use crate::error::{Error, Result};
use crate::graph::{Graph, Tensor};
use crate::op::Op;
use crate::{DType, Shape, Value};

impl Graph {
    /// A tensor that must be fed at run time, as `tf.placeholder(dtype, shape)`; name it with
    /// [`Named::named`](crate::Named::named) as TF's `name="X"`.
    #[track_caller]
    pub fn placeholder(&self, dtype: DType, shape: impl Into<Shape>) -> Result<Tensor> {
        self.add_op1(Op::Placeholder { dtype, shape: shape.into() }, &[], None)
    }

    /// `default` unless a value is fed, as `tf.placeholder_with_default` (a `training` switch
    /// that is off unless fed on, say).
    ///
    /// ```
    /// use tensorgraph_graph::{DType, Graph, Named};
    /// let g = Graph::new();
    /// let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
    /// assert_eq!((training.op_name(), training.op().op_type()), ("training".into(), "PlaceholderWithDefault"));
    /// ```
    #[track_caller]
    pub fn placeholder_with_default(&self, default: &Tensor) -> Result<Tensor> {
        self.add_op1(Op::PlaceholderWithDefault, &[default], None)
    }

    /// A constant tensor (`tf.constant`), named `Const` unless [`named`](crate::Named::named).
    ///
    /// ```
    /// use ndarray::array;
    /// use tensorgraph_graph::Graph;
    /// let g = Graph::new();
    /// let c = g.constant(array![[1.0f32, 2.0]]).unwrap();
    /// assert_eq!(c.shape().to_string(), "[1,2]");
    /// ```
    #[track_caller]
    pub fn constant(&self, value: impl Into<Value>) -> Result<Tensor> {
        self.add_op1(Op::Const { value: value.into() }, &[], None)
    }

    /// A scalar constant of `dtype`.
    #[track_caller]
    pub fn scalar(&self, x: f64, dtype: DType) -> Result<Tensor> {
        self.add_op1(Op::Const { value: Value::filled(dtype, &[], x) }, &[], None)
    }
}

/// A tensor of `shape` filled with `value` (`tf.fill`).
#[track_caller]
pub fn fill(g: &Graph, shape: &[usize], dtype: DType, value: f64) -> Result<Tensor> {
    g.add_op1(Op::Fill { dtype, shape: shape.to_vec(), value }, &[], None)
}

/// `tf.zeros`.
#[track_caller]
pub fn zeros(g: &Graph, shape: &[usize], dtype: DType) -> Result<Tensor> {
    fill(g, shape, dtype, 0.0)
}

/// `tf.ones`.
#[track_caller]
pub fn ones(g: &Graph, shape: &[usize], dtype: DType) -> Result<Tensor> {
    fill(g, shape, dtype, 1.0)
}

/// Zeros of `x`'s run-time shape and dtype.
#[track_caller]
pub fn zeros_like(x: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::ZerosLike, &[x], None)
}

/// Ones of `x`'s run-time shape and dtype.
#[track_caller]
pub fn ones_like(x: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::OnesLike, &[x], None)
}

/// Reshapes to `shape`, in which one entry may be -1 (`tf.reshape`).
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, ops::array};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
/// let img = array::reshape(&x, &[-1, 28, 28, 1]).unwrap();
/// assert_eq!(img.shape().to_string(), "[?,28,28,1]");
/// let two = g.placeholder(DType::F32, [2, 784]).named("two").unwrap();
/// assert!(array::reshape(&two, &[3, -1]).is_err()); // 1568 elements do not split in 3 rows
/// ```
#[track_caller]
pub fn reshape(x: &Tensor, shape: &[i64]) -> Result<Tensor> {
    x.graph().add_op1(Op::Reshape { shape: shape.to_vec() }, &[x], None)
}

/// Permutes dimensions (`tf.transpose`); `None` reverses them.
#[track_caller]
pub fn transpose(x: &Tensor, perm: Option<&[usize]>) -> Result<Tensor> {
    let perm = perm.map_or_else(|| (0..x.shape().rank()).rev().collect(), <[usize]>::to_vec);
    x.graph().add_op1(Op::Transpose { perm }, &[x], None)
}

/// Inserts a dimension of size 1 at `axis` (negative counts from the end).
#[track_caller]
pub fn expand_dims(x: &Tensor, axis: i64) -> Result<Tensor> {
    let axis = norm_axis(x, axis, 1, "ExpandDims")?;
    x.graph().add_op1(Op::ExpandDims { axis }, &[x], None)
}

/// Removes size-1 dimensions: those in `axes`, or every dimension known to be 1 if `None`.
#[track_caller]
pub fn squeeze(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
    let axes = match axes {
        Some(a) => norm_axes(x, a, "Squeeze")?,
        None => x.shape().0.iter().enumerate().filter(|(_, d)| **d == Some(1)).map(|(i, _)| i).collect(),
    };
    x.graph().add_op1(Op::Squeeze { axes }, &[x], None)
}

/// Joins tensors along `axis` (`tf.concat`).
#[track_caller]
pub fn concat(xs: &[&Tensor], axis: i64) -> Result<Tensor> {
    let first = xs
        .first()
        .ok_or_else(|| Error::NotFound { what: "input to concat (got an empty list)", name: String::new() })?;
    let axis = norm_axis(first, axis, 0, "ConcatV2")?;
    first.graph().add_op1(Op::ConcatV2 { axis }, xs, None)
}

/// The slices of `params` along `axis` at `indices` (`tf.gather(params, indices, axis=axis)`):
/// the output's shape is `params.shape[..axis] + indices.shape + params.shape[axis + 1..]`. An
/// index outside `[0, params.shape[axis])` is an error when run. The gradient with respect to
/// `params` sums over repeated indices.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::array, Graph};
/// let g = Graph::new();
/// let params = g.constant(array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
/// let rows = array::gather(&params, &g.constant(array![2i64, 0, 2]).unwrap(), 0).unwrap();
/// assert_eq!(rows.shape().to_string(), "[3,2]");
/// ```
#[track_caller]
pub fn gather(params: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let axis = norm_axis(params, axis, 0, "GatherV2")?;
    params.graph().add_op1(Op::GatherV2 { axis }, &[params, indices], None)
}

/// `x` repeated `multiples[i]` times along each dimension i (`tf.tile`).
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(3)]).unwrap();
/// assert_eq!(array::tile(&x, &[1, 4]).unwrap().shape().to_string(), "[?,12]");
/// ```
#[track_caller]
pub fn tile(x: &Tensor, multiples: &[usize]) -> Result<Tensor> {
    x.graph().add_op1(Op::Tile { multiples: multiples.to_vec() }, &[x], None)
}

/// A Python-style index of `x`, as TF's `x[...]` (a `StridedSlice`): `x[:, -1]` is
/// `strided_slice(&x, &[All, At(-1)])`, `x[..., 0]` `&[Ellipsis, At(0)]`, `x[::-1]`
/// `&[Range(None, None, -1)]`, `x[:, None]` `&[All, NewAxis]`. Negative positions count from the
/// end; ranges clamp to the dimension, as in Python; a position out of bounds is an error.
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph, Index::*};
/// let g = Graph::new();
/// let outputs = g.placeholder(DType::F32, [None, Some(28), Some(128)]).unwrap();
/// let last = array::strided_slice(&outputs, &[All, At(-1)]).unwrap();
/// assert_eq!(last.shape().to_string(), "[?,128]");
/// let every_other = array::strided_slice(&outputs, &[Ellipsis, Range(Some(1), None, 2), NewAxis]).unwrap();
/// assert_eq!(every_other.shape().to_string(), "[?,28,64,1]");
/// ```
#[track_caller]
pub fn strided_slice(x: &Tensor, indices: &[crate::Index]) -> Result<Tensor> {
    x.graph().add_op1(Op::StridedSlice(crate::SliceSpec::from_indices(indices)), &[x], None)
}

/// The gradient of a [`strided_slice`] with `spec`: `dy` in zeros of `like`'s shape (TF's
/// `StridedSliceGrad`).
#[track_caller]
pub fn strided_slice_grad(dy: &Tensor, like: &Tensor, spec: &crate::SliceSpec) -> Result<Tensor> {
    dy.graph().add_op1(Op::StridedSliceGrad(spec.clone()), &[dy, like], None)
}

/// How [`split`] cuts: into `n` equal pieces (the axis' size must be known and divisible), or
/// into pieces of the given sizes (`tf.split`'s `num_or_size_splits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitSizes {
    Num(usize),
    Sizes(Vec<usize>),
}

impl From<usize> for SplitSizes {
    fn from(n: usize) -> Self {
        SplitSizes::Num(n)
    }
}

impl From<&[usize]> for SplitSizes {
    fn from(sizes: &[usize]) -> Self {
        SplitSizes::Sizes(sizes.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for SplitSizes {
    fn from(sizes: [usize; N]) -> Self {
        SplitSizes::Sizes(sizes.to_vec())
    }
}

impl From<Vec<usize>> for SplitSizes {
    fn from(sizes: Vec<usize>) -> Self {
        SplitSizes::Sizes(sizes)
    }
}

/// Cuts `x` along `axis` into pieces (`tf.split(x, num_or_size_splits, axis)`): `split(&x, 3, 1)`
/// into three equal pieces, `split(&x, [2, 5], 1)` into pieces of 2 and 5.
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(6)]).unwrap();
/// let parts = array::split(&x, 3, 1).unwrap();
/// assert_eq!(parts.iter().map(|p| p.shape().to_string()).collect::<Vec<_>>(), ["[?,2]"; 3]);
/// assert_eq!(array::split(&x, [1, 5], -1).unwrap()[1].shape().to_string(), "[?,5]");
/// ```
#[track_caller]
pub fn split(x: &Tensor, num_or_size_splits: impl Into<SplitSizes>, axis: i64) -> Result<Vec<Tensor>> {
    let axis = norm_axis(x, axis, 0, "SplitV")?;
    let sizes = match num_or_size_splits.into() {
        SplitSizes::Sizes(sizes) => sizes,
        SplitSizes::Num(n) => match x.shape().dim(axis) {
            Some(d) if n > 0 && d % n == 0 => vec![d / n; n],
            d => {
                let d = d.map_or("unknown".to_string(), |d| d.to_string());
                return Err(invalid(
                    x,
                    "SplitV",
                    format!("cannot split axis {axis} of size {d} into {n} equal pieces"),
                ));
            }
        },
    };
    let n = sizes.len();
    let op = x.graph().add_node(Op::SplitV { sizes, axis }, &[x], &[], None, crate::SourceLocation::caller())?;
    (0..n).map(|i| op.output(i)).collect()
}

/// Stacks tensors of one shape along a new `axis` (`tf.stack`).
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(3)]).unwrap();
/// assert_eq!(array::stack(&[&x, &x], 1).unwrap().shape().to_string(), "[?,2,3]");
/// ```
#[track_caller]
pub fn stack(xs: &[&Tensor], axis: i64) -> Result<Tensor> {
    let first = xs
        .first()
        .ok_or_else(|| Error::NotFound { what: "input to stack (got an empty list)", name: String::new() })?;
    let axis = norm_axis(first, axis, 1, "Pack")?;
    first.graph().add_op1(Op::Pack { axis }, xs, None)
}

/// The slices of `x` along `axis` (`tf.unstack`); that axis' size must be known.
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28)]).unwrap();
/// let rows = array::unstack(&x, 1).unwrap();
/// assert_eq!((rows.len(), rows[0].shape().to_string()), (28, "[?,28]".to_string()));
/// ```
#[track_caller]
pub fn unstack(x: &Tensor, axis: i64) -> Result<Vec<Tensor>> {
    let axis = norm_axis(x, axis, 0, "Unpack")?;
    let Some(num) = x.shape().dim(axis) else {
        return Err(invalid(
            x,
            "Unpack",
            format!("cannot unstack axis {axis} of shape {}: its size is unknown", x.shape()),
        ));
    };
    let op = x.graph().add_node(Op::Unpack { num, axis }, &[x], &[], None, crate::SourceLocation::caller())?;
    (0..num).map(|i| op.output(i)).collect()
}

/// A static slice (`tf.slice`): `size[i] == -1` takes everything from `begin[i]` on.
#[track_caller]
pub fn slice(x: &Tensor, begin: &[usize], size: &[i64]) -> Result<Tensor> {
    x.graph().add_op1(Op::Slice { begin: begin.to_vec(), size: size.to_vec() }, &[x], None)
}

/// Zero padding (`tf.pad`): `(before, after)` per dimension.
#[track_caller]
pub fn pad(x: &Tensor, paddings: &[(usize, usize)]) -> Result<Tensor> {
    x.graph().add_op1(Op::Pad { paddings: paddings.to_vec() }, &[x], None)
}

/// How [`mirror_pad`] mirrors: TF's `mode` of `tf.pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorMode {
    /// `[1, 2, 3]` padded by 2 before: `[3, 2, 1, 2, 3]` (the edge is not repeated).
    Reflect,
    /// `[1, 2, 3]` padded by 2 before: `[2, 1, 1, 2, 3]` (the edge is repeated).
    Symmetric,
}

/// Padding with the input's mirror image, as `tf.pad(x, paddings, mode="REFLECT")` or
/// `"SYMMETRIC"`: each pad at most the dimension (minus one for REFLECT).
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::array::{self, MirrorMode}, Graph};
/// let g = Graph::new();
/// let x = g.constant(array![[1.0f32, 2.0, 3.0]]).unwrap();
/// let y = array::mirror_pad(&x, &[(0, 0), (2, 1)], MirrorMode::Reflect).unwrap();
/// assert_eq!(y.shape().to_string(), "[1,6]"); // 3 2 1 2 3 2
/// ```
#[track_caller]
pub fn mirror_pad(x: &Tensor, paddings: &[(usize, usize)], mode: MirrorMode) -> Result<Tensor> {
    let op = Op::MirrorPad { paddings: paddings.to_vec(), symmetric: mode == MirrorMode::Symmetric };
    x.graph().add_op1(op, &[x], None)
}

/// The coordinates of the true (non-zero) elements of `condition` as int64 rows
/// `[num_true, rank]`, as TF's one-argument `tf.where(condition)`.
#[track_caller]
pub fn where_true(condition: &Tensor) -> Result<Tensor> {
    condition.graph().add_op1(Op::Where, &[condition], None)
}

/// A tensor of shape `dims` (an int vector computed when the graph runs, such as
/// `tf.shape(x)[0]` stacked with a constant) filled with the scalar `value`, as `tf.fill`.
#[track_caller]
pub fn fill_dims(dims: &Tensor, value: &Tensor) -> Result<Tensor> {
    dims.graph().add_op1(Op::FillDims, &[dims, value], None)
}

/// `tf.range(start, limit, delta)` of scalar tensors known when the graph runs: `start, start +
/// delta, ...` up to `limit`, excluded (see [`range`] for numbers known when building).
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph, Shape};
/// let g = Graph::new();
/// let n = g.placeholder(DType::I32, Shape::scalar()).unwrap();
/// let (zero, one) = (g.scalar(0.0, DType::I32).unwrap(), g.scalar(1.0, DType::I32).unwrap());
/// assert_eq!(array::range_of(&zero, &n, &one).unwrap().shape().to_string(), "[?]");
/// ```
#[track_caller]
pub fn range_of(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor> {
    start.graph().add_op1(Op::Range, &[start, limit, delta], None)
}

/// `tf.reshape(x, shape)` with `shape` an int vector known when the graph runs (its length
/// known when the graph is built; at most one -1); see [`reshape()`] for a constant shape.
///
/// ```
/// use tensorgraph_graph::{ops::{array, math}, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(6)]).unwrap();
/// let like = g.placeholder(DType::F32, [None, None, None]).unwrap();
/// let y = array::reshape_dynamic(&x, &math::shape(&like, DType::I32).unwrap()).unwrap();
/// assert_eq!(y.shape().to_string(), "[?,?,?]");
/// ```
#[track_caller]
pub fn reshape_dynamic(x: &Tensor, shape: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::ReshapeDynamic, &[x, shape], None)
}

/// `tf.slice(x, begin, size)` with `begin` and `size` int vectors known when the graph runs
/// (a size of -1 takes the rest of that dimension); see [`slice()`] for constant ones.
#[track_caller]
pub fn slice_dynamic(x: &Tensor, begin: &Tensor, size: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::SliceDynamic, &[x, begin, size], None)
}

/// `start, start + delta, ...` up to (not including) `limit` (`tf.range` with numbers), as a
/// constant of `dtype`.
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph};
/// let g = Graph::new();
/// assert_eq!(array::range(&g, 3.0, 10.0, 3.0, DType::I32).unwrap().shape().to_string(), "[3]"); // 3, 6, 9
/// ```
#[track_caller]
pub fn range(g: &Graph, start: f64, limit: f64, delta: f64, dtype: DType) -> Result<Tensor> {
    let n =
        if delta == 0.0 || !((limit - start) / delta).is_finite() { -1.0 } else { ((limit - start) / delta).ceil() };
    if delta == 0.0 || n > u32::MAX as f64 || dtype == DType::String {
        return Err(Error::InvalidArgument {
            node: crate::NodeInfo {
                name: "range".into(),
                op: "Range".into(),
                location: crate::SourceLocation::caller(),
            },
            detail: match dtype {
                DType::String => "range of strings".into(),
                _ => format!("range({start}, {limit}, {delta}) has no finite length"),
            },
        });
    }
    let mut values = crate::try_vec(n.max(0.0) as usize, 0.0).map_err(|detail| Error::InvalidArgument {
        node: crate::NodeInfo { name: "range".into(), op: "Range".into(), location: crate::SourceLocation::caller() },
        detail,
    })?;
    values.iter_mut().enumerate().for_each(|(i, v)| *v = start + i as f64 * delta);
    let v = ndarray::Array1::from(values).into_dyn();
    g.constant(match dtype {
        DType::F32 => Value::from(v.mapv(|x| x as f32)),
        DType::F64 => Value::from(v),
        DType::I32 => Value::from(v.mapv(|x| x as i32)),
        DType::I64 => Value::from(v.mapv(|x| x as i64)),
        DType::Bool => Value::from(v.mapv(|x| x != 0.0)),
        DType::String => unreachable!("refused above"),
    })
}

/// `mask[i, j] = j < lengths[i]` for `j < maxlen`, as `dtype` (`tf.sequence_mask`): which steps
/// of padded sequences are real, e.g. to average a loss over them.
///
/// ```
/// use tensorgraph_graph::{ops::array, DType, Graph};
/// let g = Graph::new();
/// let lengths = g.placeholder(DType::I32, [None]).unwrap();
/// assert_eq!(array::sequence_mask(&lengths, 69, DType::F32).unwrap().shape().to_string(), "[?,69]");
/// ```
#[track_caller]
pub fn sequence_mask(lengths: &Tensor, maxlen: usize, dtype: DType) -> Result<Tensor> {
    let steps = range(lengths.graph(), 0.0, maxlen as f64, 1.0, lengths.dtype())?;
    crate::ops::math::less(&steps, &expand_dims(lengths, -1)?)?.cast(dtype)
}

/// One-hot encoding of integer `indices` along a new last axis of size `depth` (`tf.one_hot`);
/// out-of-range indices give an all-`off_value` row, as in TF.
#[track_caller]
pub fn one_hot(indices: &Tensor, depth: usize, on_value: f64, off_value: f64, dtype: DType) -> Result<Tensor> {
    indices.graph().add_op1(Op::OneHot { depth, on_value, off_value, dtype }, &[indices], None)
}

/// Broadcasts `x` to the run-time shape of `like`.
#[track_caller]
pub fn broadcast_to(x: &Tensor, like: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::BroadcastTo, &[x, like], None)
}

/// Sums `grad` over broadcast dimensions down to the run-time shape of `like`.
#[track_caller]
pub fn sum_to_shape(grad: &Tensor, like: &Tensor) -> Result<Tensor> {
    grad.graph().add_op1(Op::SumToShape, &[grad, like], None)
}

/// Identity whose gradient is zero (`tf.stop_gradient`).
#[track_caller]
pub fn stop_gradient(x: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::StopGradient, &[x], None)
}
