//! Arithmetic, reductions, comparisons and casts (`tf.math`).

use super::{norm_axes, norm_axis};
use crate::error::Result;
use crate::graph::Tensor;
use crate::op::{BinaryOp, Op, ReduceOp, UnaryOp};
use crate::DType;

/// Matrix product of two rank-2 tensors, optionally transposing either, as `tf.matmul`.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, ops::math};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
/// let w = g.placeholder(DType::F32, [300, 100]).named("W")?;
/// let err = math::matmul(&x, &w, false, false).unwrap_err();
/// assert!(err.to_string().starts_with("shape mismatch in MatMul (MatMul): [?,784] x [300,100]"));
/// # Ok(()) }
/// ```
#[track_caller]
pub fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    a.graph().add_op1(Op::MatMul { transpose_a, transpose_b }, &[a, b], None)
}

#[track_caller]
pub(crate) fn unary(u: UnaryOp, x: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::Unary(u), &[x], None)
}

#[track_caller]
pub(crate) fn binary(b: BinaryOp, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::Binary(b), &[x, y], None)
}

macro_rules! unary_fns {
    ($($(#[$doc:meta])* $name:ident => $variant:ident;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(x: &Tensor) -> Result<Tensor> {
            unary(UnaryOp::$variant, x)
        }
    )*};
}

macro_rules! binary_fns {
    ($($(#[$doc:meta])* $name:ident => $variant:ident;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(x: &Tensor, y: &Tensor) -> Result<Tensor> {
            binary(BinaryOp::$variant, x, y)
        }
    )*};
}

unary_fns! {
    /// e^x.
    exp => Exp;
    /// Natural logarithm.
    log => Log;
    /// log(1 + x), accurate for small x.
    log1p => Log1p;
    /// The error function, `tf.math.erf`.
    erf => Erf;
    /// -x.
    neg => Neg;
    /// x^2.
    square => Square;
    /// √x.
    sqrt => Sqrt;
    /// 1/√x.
    rsqrt => Rsqrt;
    /// |x|.
    abs => Abs;
    /// -1, 0 or 1.
    sign => Sign;
    /// 1/x.
    reciprocal => Reciprocal;
    /// The largest integer not above x (no gradient flows through it).
    floor => Floor;
    /// !x of a bool tensor (`tf.logical_not`).
    logical_not => LogicalNot;
}

/// `t` where `condition` is true, else `e`, broadcasting all three (`tf.where(c, t, e)`,
/// TF's `SelectV2`). The gradient flows to the branch each element was taken from.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(3)]).named("x").unwrap();
/// let zero = g.scalar(0.0, DType::F32).unwrap();
/// let y = math::select(&math::greater(&x, &zero).unwrap(), &x, &zero).unwrap();
/// assert_eq!(y.shape().to_string(), "[?,3]");
/// assert!(math::select(&x, &x, &zero).is_err()); // the condition must be bool
/// ```
#[track_caller]
pub fn select(condition: &Tensor, t: &Tensor, e: &Tensor) -> Result<Tensor> {
    condition.graph().add_op1(Op::Select, &[condition, t, e], None)
}

binary_fns! {
    /// x + y with broadcasting (`AddV2`).
    add => Add;
    /// x - y with broadcasting.
    sub => Sub;
    /// x * y with broadcasting.
    mul => Mul;
    /// x / y with broadcasting (`RealDiv`).
    div => Div;
    /// Element-wise maximum with broadcasting.
    maximum => Maximum;
    /// Element-wise minimum with broadcasting.
    minimum => Minimum;
    /// x^y with broadcasting.
    pow => Pow;
    /// x == y, bool.
    equal => Equal;
    /// x != y, bool.
    not_equal => NotEqual;
    /// x < y, bool.
    less => Less;
    /// x <= y, bool.
    less_equal => LessEqual;
    /// x > y, bool.
    greater => Greater;
    /// x >= y, bool.
    greater_equal => GreaterEqual;
    /// x && y of bool tensors, with broadcasting (`tf.logical_and`).
    logical_and => LogicalAnd;
    /// x || y of bool tensors, with broadcasting (`tf.logical_or`).
    logical_or => LogicalOr;
}

/// Sum of tensors of one shape (`tf.add_n`).
#[track_caller]
pub fn add_n(xs: &[&Tensor]) -> Result<Tensor> {
    match xs.first() {
        Some(x) => x.graph().add_op1(Op::AddN, xs, None),
        None => Err(crate::Error::NotFound { what: "input to add_n (got an empty list)", name: String::new() }),
    }
}

#[track_caller]
fn reduce(op: ReduceOp, x: &Tensor, axes: Option<&[i64]>, keep_dims: bool) -> Result<Tensor> {
    let axes = match axes {
        Some(a) => norm_axes(x, a, op.type_name())?,
        None => (0..x.shape().rank()).collect(),
    };
    x.graph().add_op1(Op::Reduce { op, axes, keep_dims }, &[x], None)
}

macro_rules! reduce_fns {
    ($($name:ident, $keep:ident => $variant:ident;)*) => {$(
        #[doc = concat!("`tf.", stringify!($name), "` over `axes` (all if `None`; negative counts from the end), ",
                        "dropping the reduced dimensions.")]
        #[track_caller]
        pub fn $name(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
            reduce(ReduceOp::$variant, x, axes, false)
        }
        #[doc = concat!("[`", stringify!($name), "`] keeping the reduced dimensions with size 1.")]
        #[track_caller]
        pub fn $keep(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
            reduce(ReduceOp::$variant, x, axes, true)
        }
    )*};
}

reduce_fns! {
    reduce_sum, reduce_sum_keep_dims => Sum;
    reduce_mean, reduce_mean_keep_dims => Mean;
    reduce_max, reduce_max_keep_dims => Max;
    reduce_min, reduce_min_keep_dims => Min;
    reduce_prod, reduce_prod_keep_dims => Prod;
}

/// Running sums along `axis` (`tf.math.cumsum`): `exclusive` leaves each element out of its
/// own sum, `reverse` sums from the end.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::math, Graph};
/// let g = Graph::new();
/// let x = g.constant(array![[1.0f32, 2.0, 3.0]]).unwrap();
/// assert_eq!(math::cumsum(&x, -1, true, false).unwrap().shape().to_string(), "[1,3]"); // 0, 1, 3
/// ```
#[track_caller]
pub fn cumsum(x: &Tensor, axis: i64, exclusive: bool, reverse: bool) -> Result<Tensor> {
    let axis = norm_axis(x, axis, 0, "Cumsum")?;
    x.graph().add_op1(Op::Cumsum { axis, exclusive, reverse }, &[x], None)
}

/// Running products along `axis` (`tf.math.cumprod`), as [`cumsum`].
#[track_caller]
pub fn cumprod(x: &Tensor, axis: i64, exclusive: bool, reverse: bool) -> Result<Tensor> {
    let axis = norm_axis(x, axis, 0, "Cumprod")?;
    x.graph().add_op1(Op::Cumprod { axis, exclusive, reverse }, &[x], None)
}

/// Matrix products over the last two axes of tensors of rank 2 or more, the leading (batch) axes
/// broadcast, as `tf.matmul` on batches (TF's `BatchMatMulV2`); `adjoint_a`/`adjoint_b`
/// transpose the last two axes first.
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// let g = Graph::new();
/// let q = g.placeholder(DType::F32, [None, Some(4), Some(8), Some(16)]).unwrap();
/// let k = g.placeholder(DType::F32, [None, Some(4), Some(10), Some(16)]).unwrap();
/// let scores = math::batch_matmul(&q, &k, false, true).unwrap();
/// assert_eq!(scores.shape().to_string(), "[?,4,8,10]");
/// ```
#[track_caller]
pub fn batch_matmul(a: &Tensor, b: &Tensor, adjoint_a: bool, adjoint_b: bool) -> Result<Tensor> {
    a.graph().add_op1(Op::BatchMatMulV2 { adj_x: adjoint_a, adj_y: adjoint_b }, &[a, b], None)
}

/// Index of the largest value along `axis` (int64), as `tf.argmax`; the first on ties.
#[track_caller]
pub fn argmax(x: &Tensor, axis: i64) -> Result<Tensor> {
    let axis = norm_axis(x, axis, 0, "ArgMax")?;
    x.graph().add_op1(Op::ArgMax { axis, output_type: DType::I64 }, &[x], None)
}

/// Index of the smallest value along `axis` (int64), as `tf.argmin`; the first on ties.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::math, Graph};
/// let g = Graph::new();
/// let x = g.constant(array![[3.0f32, 1.0, 1.0], [0.0, 5.0, 0.0]]).unwrap();
/// assert_eq!(math::argmin(&x, -1).unwrap().shape().to_string(), "[2]"); // [1, 0] when run
/// ```
#[track_caller]
pub fn argmin(x: &Tensor, axis: i64) -> Result<Tensor> {
    let axis = norm_axis(x, axis, 0, "ArgMin")?;
    x.graph().add_op1(Op::ArgMin { axis, output_type: DType::I64 }, &[x], None)
}

/// Converts to `to` (`tf.cast`): floats to ints truncate toward zero; bools become 0 or 1.
#[track_caller]
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    x.graph().add_op1(Op::Cast { to }, &[x], None)
}

/// The run-time shape of `x` as a vector of `dtype` (int32 or int64), as `tf.shape(x, out_type)`.
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(3)]).unwrap();
/// assert_eq!(math::shape(&x, DType::I32).unwrap().shape().to_string(), "[2]");
/// ```
#[track_caller]
pub fn shape(x: &Tensor, dtype: DType) -> Result<Tensor> {
    x.graph().add_op1(Op::Shape { dtype }, &[x], None)
}

/// Number of elements over `axes` (all if `None`) at run time, as a scalar of `dtype`.
#[track_caller]
pub fn size(x: &Tensor, axes: Option<&[i64]>, dtype: DType) -> Result<Tensor> {
    let axes = axes.map(|a| norm_axes(x, a, "Size")).transpose()?;
    x.graph().add_op1(Op::Size { axes, dtype }, &[x], None)
}

/// The number of dimensions as an int32 scalar (`tf.rank`): a constant, since every tensor's
/// rank is known when the graph is built here.
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, None, Some(3)]).unwrap();
/// assert_eq!(math::rank(&x).unwrap().op().op_type(), "Const");
/// ```
#[track_caller]
pub fn rank(x: &Tensor) -> Result<Tensor> {
    x.graph().scalar(x.shape().rank() as f64, DType::I32)
}

/// The identity (`tf.identity`).
#[track_caller]
pub fn identity(x: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::Identity, &[x], None)
}

impl Tensor {
    /// `tf.cast(self, dtype)`.
    #[track_caller]
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        cast(self, dtype)
    }
}

/// Sums the slices of `data` by segment (`tf.math.unsorted_segment_sum`): output row `i` is the
/// sum of the slices whose `segment_ids` entry is `i` (`segment_ids` has the shape of `data`'s
/// leading dimensions); `num_segments` is an int scalar tensor. Negative ids are dropped.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// let g = Graph::new();
/// let data = g.constant(array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
/// let ids = g.constant(array![1i64, 0, 1]).unwrap();
/// let sums = math::unsorted_segment_sum(&data, &ids, &g.scalar(2.0, DType::I64).unwrap()).unwrap();
/// assert_eq!(sums.shape().to_string(), "[?,2]"); // rows [3, 4] and [6, 8] when run
/// ```
#[track_caller]
pub fn unsorted_segment_sum(data: &Tensor, segment_ids: &Tensor, num_segments: &Tensor) -> Result<Tensor> {
    data.graph().add_op1(Op::UnsortedSegmentSum, &[data, segment_ids, num_segments], None)
}

/// `(x - y)²`, broadcasting (`tf.math.squared_difference`).
#[track_caller]
pub fn squared_difference(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    square(&sub(x, y)?)
}

/// `log(Σ exp(x))` over `axes` (all if `None`), computed as TF does: the maximum (held
/// constant for the gradient) is subtracted before `exp` and added back, so large inputs do not
/// overflow (`tf.reduce_logsumexp`).
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::math, Graph};
/// let g = Graph::new();
/// let x = g.constant(array![[1000.0f32, 1000.0], [0.0, 0.0]]).unwrap();
/// assert_eq!(math::reduce_logsumexp(&x, Some(&[1])).unwrap().shape().to_string(), "[2]"); // 1000.693, 0.693
/// ```
#[track_caller]
pub fn reduce_logsumexp(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
    let max_kept = crate::ops::array::stop_gradient(&reduce_max_keep_dims(x, axes)?)?;
    let max = crate::ops::array::stop_gradient(&reduce_max(x, axes)?)?;
    add(&log(&reduce_sum(&exp(&sub(x, &max_kept)?)?, axes)?)?, &max)
}

/// `t` clipped to `[clip_value_min, clip_value_max]` (`tf.clip_by_value`; TF's order of
/// `minimum` then `maximum`, so the gradient at the bounds is TF's).
#[track_caller]
pub fn clip_by_value(t: &Tensor, clip_value_min: &Tensor, clip_value_max: &Tensor) -> Result<Tensor> {
    maximum(&minimum(t, clip_value_max)?, clip_value_min)
}

/// `t` scaled down so that its L2 norm over `axes` (all if `None`) is at most `clip_norm`
/// (`tf.clip_by_norm`; a zero tensor stays zero, with a zero gradient, as TF's).
#[track_caller]
pub fn clip_by_norm(t: &Tensor, clip_norm: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
    let g = t.graph();
    let l2sum = reduce_sum_keep_dims(&square(t)?, axes)?;
    let positive = greater(&l2sum, &g.scalar(0.0, t.dtype())?)?;
    let ones = crate::ops::array::ones_like(&l2sum)?;
    let l2norm = select(&positive, &sqrt(&select(&positive, &l2sum, &ones)?)?, &l2sum)?;
    div(&mul(t, clip_norm)?, &maximum(&l2norm, clip_norm)?)
}

/// `√(Σ_i ‖t_i‖²)` over every tensor (`tf.linalg.global_norm`).
#[track_caller]
pub fn global_norm(ts: &[&Tensor]) -> Result<Tensor> {
    let first = ts.first().ok_or_else(|| crate::Error::NotFound {
        what: "tensor for global_norm (got an empty list)",
        name: String::new(),
    })?;
    let half_squared: Vec<Tensor> = ts.iter().map(|t| crate::ops::nn::l2_loss(t)).collect::<Result<_>>()?;
    let total = reduce_sum(&crate::ops::array::stack(&half_squared.iter().collect::<Vec<_>>(), 0)?, None)?;
    sqrt(&mul(&total, &first.graph().scalar(2.0, first.dtype())?)?)
}

/// The tensors scaled by `clip_norm / max(global_norm, clip_norm)`, and their global norm
/// (`tf.clip_by_global_norm`): the gradient clipping of TF1 programs
/// (`compute_gradients`, clip, `apply_gradients`). A NaN or infinite norm makes every value NaN,
/// as TF's does.
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// let g = Graph::new();
/// let a = g.placeholder(DType::F32, [Some(3)]).unwrap();
/// let b = g.placeholder(DType::F32, [Some(2), Some(2)]).unwrap();
/// let (clipped, norm) = math::clip_by_global_norm(&[&a, &b], 5.0).unwrap();
/// assert_eq!((clipped.len(), norm.shape().to_string()), (2, "[]".to_string()));
/// ```
#[track_caller]
pub fn clip_by_global_norm(ts: &[&Tensor], clip_norm: f64) -> Result<(Vec<Tensor>, Tensor)> {
    let norm = global_norm(ts)?;
    let g = norm.graph();
    let (one, clip) = (g.scalar(1.0, norm.dtype())?, g.scalar(clip_norm, norm.dtype())?);
    let scale = mul(&clip, &minimum(&div(&one, &norm)?, &div(&one, &clip)?)?)?;
    // NaN or infinity in the norm reaches every value.
    let scale = add(&scale, &sub(&norm, &norm)?)?;
    let clipped = ts.iter().map(|t| mul(t, &scale.cast(t.dtype())?)).collect::<Result<_>>()?;
    Ok((clipped, norm))
}
