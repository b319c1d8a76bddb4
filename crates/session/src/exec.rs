//! The kernel binding: one arm per stateless op, each delegating to a `kernels` function.
//! Stateful ops (variables, assignments, random draws) live in `session.rs`.

use crate::element_fns::{binary_fn, comparison, unary_fn, Map, Zip};
use ndarray::{ArrayD, ArrayViewD, Ix2};
use num_traits::{AsPrimitive, Zero};
use std::cmp::Ordering;
use std::sync::Arc;
use tensorgraph_graph::{with_array, BinaryOp, ConvAttrs, DType, Op, Padding, PoolAttrs, ReduceOp, UnaryOp, Value};
use tensorgraph_kernels::buffers::BufferPool;
use tensorgraph_kernels::conv::{self, Conv2dGeometry};
use tensorgraph_kernels::depthwise;
use tensorgraph_kernels::lstm;
use tensorgraph_kernels::pool::{self, PoolGeometry};
use tensorgraph_kernels::{
    array as karray, elementwise as ew, gemm, kbail, nn as knn, reduce as kreduce, summary as ksummary, Arith,
    Epilogue, Float, KResult, KernelError,
};

/// Applies `$body` to the float array inside `$v` (binding `$a`, with `$t` the element type).
macro_rules! float {
    ($v:expr, $a:ident, $t:ident => $body:expr) => {
        match $v {
            Value::F32($a) => {
                type $t = f32;
                Value::from($body)
            }
            Value::F64($a) => {
                type $t = f64;
                Value::from($body)
            }
            other => kbail!("expected float32 or float64, got {}", other.dtype()),
        }
    };
}

/// Applies `$body` to the numeric (non-bool) array inside `$v`.
macro_rules! numeric {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            Value::F32($a) => Value::from($body),
            Value::F64($a) => Value::from($body),
            Value::I32($a) => Value::from($body),
            Value::I64($a) => Value::from($body),
            other => kbail!("expected a numeric dtype, got {}", other.dtype()),
        }
    };
}

/// Applies `$body` to two arrays of the same numeric dtype.
macro_rules! numeric2 {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr) => {
        match ($x, $y) {
            (Value::F32($a), Value::F32($b)) => Value::from($body),
            (Value::F64($a), Value::F64($b)) => Value::from($body),
            (Value::I32($a), Value::I32($b)) => Value::from($body),
            (Value::I64($a), Value::I64($b)) => Value::from($body),
            (x, y) => kbail!("dtypes {} and {} do not match or are not numeric", x.dtype(), y.dtype()),
        }
    };
}

/// Applies `$body` to two float arrays of the same dtype (`$t` the element type).
macro_rules! float2 {
    // `$body` makes the values itself (several outputs). First: `values {..}` is an expr too.
    ($x:expr, $y:expr, $a:ident, $b:ident, $t:ident => values $body:expr) => {
        match ($x, $y) {
            (Value::F32($a), Value::F32($b)) => {
                type $t = f32;
                $body
            }
            (Value::F64($a), Value::F64($b)) => {
                type $t = f64;
                $body
            }
            (x, y) => kbail!("expected two float tensors of one dtype, got {} and {}", x.dtype(), y.dtype()),
        }
    };
    ($x:expr, $y:expr, $a:ident, $b:ident, $t:ident => $body:expr) => {
        float2!($x, $y, $a, $b, $t => values Value::from($body))
    };
}

/// Runs a stateless op on its input values.
///
/// Large float outputs come from `buffers` (the session's recycled buffers).
pub fn compute(op: &Op, inputs: &[&Value], buffers: &mut BufferPool) -> KResult<Vec<Value>> {
    let x = || inputs[0];
    let one = |v: Value| Ok(vec![v]);
    match op {
        Op::Fill { dtype, shape, value } => one(Value::try_filled(*dtype, shape, *value).map_err(KernelError)?),
        Op::MatMul { .. } => compute_fused(op, inputs, false, None, true, None, buffers),
        Op::Unary(u) => one(unary(*u, x(), buffers)?),
        Op::Binary(b) => one(binary(*b, x(), inputs[1], buffers)?),
        Op::AddN => one(add_n(inputs)?),
        Op::Select => one(select(x(), inputs[1], inputs[2])?),
        Op::BiasAdd => one(bias_add(x(), inputs[1], buffers)?),
        Op::Reduce { op, axes, keep_dims } => one(reduce(*op, x(), axes, *keep_dims)?),
        Op::ArgMax { axis, output_type } => {
            one(cast(&numeric!(x(), a => kreduce::argmax(&a.view(), *axis)?), *output_type)?)
        }
        Op::ArgMin { axis, output_type } => {
            one(cast(&numeric!(x(), a => kreduce::argmin(&a.view(), *axis)?), *output_type)?)
        }
        Op::Cast { to } => one(cast(x(), *to)?),
        Op::Cumsum { axis, exclusive, reverse } => {
            one(numeric!(x(), a => kreduce::cumulative(&a.view(), *axis, *exclusive, *reverse, false)))
        }
        Op::Cumprod { axis, exclusive, reverse } => {
            one(numeric!(x(), a => kreduce::cumulative(&a.view(), *axis, *exclusive, *reverse, true)))
        }
        Op::TopKV2 { k, .. } => {
            let (values, indices) = match x() {
                Value::F32(a) => kreduce::top_k(&a.view(), *k).map(|(v, i)| (Value::from(v), i))?,
                Value::F64(a) => kreduce::top_k(&a.view(), *k).map(|(v, i)| (Value::from(v), i))?,
                Value::I32(a) => kreduce::top_k(&a.view(), *k).map(|(v, i)| (Value::from(v), i))?,
                Value::I64(a) => kreduce::top_k(&a.view(), *k).map(|(v, i)| (Value::from(v), i))?,
                v => kbail!("top_k of {}", v.dtype()),
            };
            Ok(vec![values, Value::from(indices)])
        }
        Op::BatchMatMulV2 { adj_x, adj_y } => {
            one(float2!(x(), inputs[1], a, b, T => gemm::batch_matmul::<T>(&a.view(), &b.view(), *adj_x, *adj_y)?))
        }
        Op::LeakyRelu { alpha } => one(
            float!(x(), a, T => { let al = T::of(*alpha); ew::map(&a.view(), move |v: T| if v > T::zero() { v } else { al * v }) }),
        ),
        Op::Softmax => one(float!(x(), a, T => knn::softmax::<T>(&a.view()))),
        Op::LogSoftmax => one(float!(x(), a, T => knn::log_softmax::<T>(&a.view()))),
        Op::SparseSoftmaxCrossEntropyWithLogits => sparse_xent(x(), inputs[1]),
        Op::FusedBatchNorm { epsilon } => batch_norm(inputs, *epsilon),
        Op::LSTMBlockCell { forget_bias, cell_clip, use_peephole } => {
            let attrs =
                lstm::BlockAttrs { forget_bias: *forget_bias, cell_clip: *cell_clip, use_peephole: *use_peephole };
            match x() {
                Value::F32(_) => lstm_block::<f32>(inputs, attrs, buffers),
                Value::F64(_) => lstm_block::<f64>(inputs, attrs, buffers),
                other => kbail!("LSTMBlockCell needs float inputs, got {}", other.dtype()),
            }
        }
        Op::LSTMBlockCellGrad { use_peephole } => match x() {
            Value::F32(_) => lstm_block_grad::<f32>(inputs, *use_peephole, buffers),
            Value::F64(_) => lstm_block_grad::<f64>(inputs, *use_peephole, buffers),
            other => kbail!("LSTMBlockCellGrad needs float inputs, got {}", other.dtype()),
        },
        Op::FusedBatchNormGrad => batch_norm_grad(inputs),
        Op::InTopKV2 { k } => {
            let t = as_i64(inputs[1])?;
            one(float!(x(), a, T => knn::in_top_k::<T>(&a.view(), &t.view(), *k)?))
        }
        Op::Reshape { .. } | Op::ExpandDims { .. } | Op::Squeeze { .. } => {
            let target = reshape_target(op, x().shape()).expect("a reshape op")?;
            one(with_array!(x(), a => Value::from(karray::reshape(a.clone(), &target)?)))
        }
        Op::Transpose { perm } => one(with_array!(x(), a => Value::from(karray::transpose(&a.view(), perm)?))),
        Op::ConcatV2 { axis } => one(join(inputs, *axis, false)?),
        Op::Slice { begin, size } => one(with_array!(x(), a => Value::from(karray::slice(&a.view(), begin, size)?))),
        Op::GatherV2 { axis } => {
            let idx = as_i64(inputs[1])?;
            one(with_array!(x(), a => Value::from(karray::gather(&a.view(), &idx.view(), *axis)?)))
        }
        Op::StridedSlice(spec) => {
            let (parts, out) = resolve_slice(spec, x().shape())?;
            one(with_array!(x(), a => Value::from(karray::strided(&a.view(), &parts, &out)?)))
        }
        Op::StridedSliceGrad(spec) => {
            let shape = inputs[1].shape();
            let (parts, _) = resolve_slice(spec, shape)?;
            one(numeric!(x(), a => karray::strided_grad(&a.view(), shape, &parts)?))
        }
        Op::Tile { multiples } => one(with_array!(x(), a => Value::from(karray::tile(&a.view(), multiples)?))),
        Op::UnsortedSegmentSum => {
            let ids = as_i64(inputs[1])?;
            let num = match as_i64(inputs[2])?.iter().next() {
                Some(&n) if n >= 0 && inputs[2].len() == 1 => n as usize,
                _ => kbail!("num_segments must be a non-negative scalar, got {:?}", inputs[2].to_f64_vec()),
            };
            one(numeric!(x(), a => karray::unsorted_segment_sum(&a.view(), &ids.view(), num)?))
        }
        Op::SplitV { sizes, axis } => {
            with_array!(x(), a => Ok(karray::split(&a.view(), sizes, *axis)?.into_iter().map(Value::from).collect()))
        }
        Op::Pack { axis } => one(join(inputs, *axis, true)?),
        Op::Unpack { num, axis } => {
            with_array!(x(), a => Ok(karray::unstack(&a.view(), *num, *axis)?.into_iter().map(Value::from).collect()))
        }
        Op::Pad { paddings } => one(numeric!(x(), a => karray::pad(&a.view(), paddings)?)),
        Op::MirrorPad { paddings, symmetric } => {
            one(with_array!(x(), a => Value::from(karray::mirror_pad(&a.view(), paddings, *symmetric)?)))
        }
        Op::MirrorPadGrad { paddings, symmetric } => {
            one(numeric!(x(), a => karray::mirror_pad_grad(&a.view(), paddings, *symmetric)?))
        }
        Op::Range => {
            let (start, limit, delta) = (scalar(x())?, scalar(inputs[1])?, scalar(inputs[2])?);
            if delta == 0.0 {
                kbail!("Requires delta != 0: {delta}");
            }
            let n = ((limit - start) / delta).ceil();
            if !(n.is_finite() || n.is_nan()) || n > isize::MAX as f64 {
                kbail!("range({start}, {limit}, {delta}) has too many elements");
            }
            let n = if n > 0.0 { n as usize } else { 0 };
            // Integers step in integers (exact past 2^53), floats in f64.
            let values = match x() {
                Value::I32(_) | Value::I64(_) => {
                    let (s, d) = (start as i64, delta as i64);
                    let mut v = karray::try_filled(&[n], 0i64)?;
                    v.iter_mut().enumerate().for_each(|(i, x)| *x = s.wrapping_add((i as i64).wrapping_mul(d)));
                    Value::from(v)
                }
                _ => {
                    let mut v = karray::try_filled(&[n], 0.0f64)?;
                    v.iter_mut().enumerate().for_each(|(i, x)| *x = start + i as f64 * delta);
                    Value::from(v)
                }
            };
            one(cast(&values, x().dtype())?)
        }
        Op::ReshapeDynamic => {
            let target = karray::reshape_target(x().shape(), as_i64(inputs[1])?.as_slice().unwrap_or_default())?;
            one(with_array!(x(), a => Value::from(karray::reshape(a.clone(), &target)?)))
        }
        Op::SliceDynamic => {
            let (begin, size) = (as_i64(inputs[1])?, as_i64(inputs[2])?);
            let shape = x().shape();
            if begin.len() != shape.len() || size.len() != shape.len() {
                kbail!("begin and size need {} entries, got {} and {}", shape.len(), begin.len(), size.len());
            }
            let mut b = Vec::with_capacity(shape.len());
            for ((&s, &n), &d) in begin.iter().zip(size.iter()).zip(shape) {
                let fits =
                    s >= 0 && (s as u64) <= d as u64 && (n == -1 || (n >= 0 && (s as u64 + n as u64) <= d as u64));
                if !fits {
                    kbail!(
                        "slice of begin {:?} and size {:?} does not fit {}",
                        begin.as_slice(),
                        size.as_slice(),
                        karray::fmt_shape(shape)
                    );
                }
                b.push(s as usize);
            }
            let size: Vec<i64> = size.iter().copied().collect();
            one(with_array!(x(), a => Value::from(karray::slice(&a.view(), &b, &size)?)))
        }
        Op::SliceGrad => {
            let (dy, like, begin) = (x(), inputs[1].shape(), as_i64(inputs[2])?);
            let mut paddings = Vec::with_capacity(like.len());
            for ((&d, &b), &n) in dy.shape().iter().zip(begin.iter()).zip(like) {
                let after = usize::try_from(b).ok().and_then(|b| n.checked_sub(b)?.checked_sub(d).map(|a| (b, a)));
                let Some(p) = after else {
                    kbail!(
                        "a slice of {} at {:?} does not fit {}",
                        karray::fmt_shape(dy.shape()),
                        begin.as_slice(),
                        karray::fmt_shape(like)
                    );
                };
                paddings.push(p);
            }
            if paddings.len() != like.len() || begin.len() != like.len() {
                kbail!("begin {:?} does not match {}", begin.as_slice(), karray::fmt_shape(like));
            }
            one(numeric!(dy, a => karray::pad(&a.view(), &paddings)?))
        }
        Op::Where => one(Value::from(match x() {
            Value::F32(a) => karray::where_true(&a.view()),
            Value::F64(a) => karray::where_true(&a.view()),
            Value::I32(a) => karray::where_true(&a.view()),
            Value::I64(a) => karray::where_true(&a.view()),
            Value::Bool(a) => karray::where_true(&a.view()),
            Value::String(_) => kbail!("where of strings"),
        })),
        Op::FillDims => {
            let dims = as_i64(x())?;
            let shape = dims
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| KernelError(format!("dims must not be negative, got {d}"))))
                .collect::<KResult<Vec<usize>>>()?;
            let v = inputs[1];
            if v.len() != 1 {
                kbail!("value must be a scalar, got shape {}", karray::fmt_shape(v.shape()));
            }
            one(
                with_array!(v, a => Value::from(karray::try_filled(&shape, a.iter().next().cloned().expect("one element"))?)),
            )
        }
        Op::OneHot { depth, on_value, off_value, dtype } => {
            let idx = as_i64(x())?;
            let v = Value::filled(*dtype, &[], 0.0);
            one(match v {
                Value::F32(_) => {
                    Value::from(karray::one_hot(&idx.view(), *depth, *on_value as f32, *off_value as f32)?)
                }
                Value::F64(_) => Value::from(karray::one_hot(&idx.view(), *depth, *on_value, *off_value)?),
                Value::I32(_) => {
                    Value::from(karray::one_hot(&idx.view(), *depth, *on_value as i32, *off_value as i32)?)
                }
                Value::I64(_) => {
                    Value::from(karray::one_hot(&idx.view(), *depth, *on_value as i64, *off_value as i64)?)
                }
                Value::Bool(_) => {
                    Value::from(karray::one_hot(&idx.view(), *depth, *on_value != 0.0, *off_value != 0.0)?)
                }
                Value::String(_) => kbail!("one_hot of strings"),
            })
        }
        Op::ZerosLike => one(Value::filled(x().dtype(), x().shape(), 0.0)),
        Op::OnesLike => one(Value::filled(x().dtype(), x().shape(), 1.0)),
        Op::Size { axes, dtype } => {
            let s = x().shape();
            let n: usize = match axes {
                Some(axes) => axes.iter().map(|&a| s[a]).product(),
                None => s.iter().product(),
            };
            one(Value::filled(*dtype, &[], n as f64))
        }
        Op::Shape { dtype } => {
            let dims = x().shape().iter().map(|&d| d as f64);
            let mut v = Value::filled(*dtype, &[x().shape().len()], 0.0);
            match &mut v {
                Value::I32(a) => a.iter_mut().zip(dims).for_each(|(o, d)| *o = d as i32),
                Value::I64(a) => a.iter_mut().zip(dims).for_each(|(o, d)| *o = d as i64),
                other => kbail!("Shape gives int32 or int64, not {}", other.dtype()),
            }
            one(v)
        }
        Op::BroadcastTo => {
            let target = inputs[1].shape().to_vec();
            one(with_array!(x(), a => Value::from(karray::broadcast_to(&a.view(), &target)?)))
        }
        Op::SumToShape => {
            let target = inputs[1].shape().to_vec();
            one(numeric!(x(), a => kreduce::sum_to_shape(&a.view(), &target)?))
        }
        Op::Identity | Op::PlaceholderWithDefault | Op::StopGradient => one(x().clone()),
        Op::Conv2D(_) => compute_fused(op, inputs, false, None, true, None, buffers),
        Op::Conv2DBackpropInput(_) => backprop_input_relu_grad(op, inputs, false, None, false, None, buffers),
        Op::Conv2DBackpropFilter(attrs) => {
            let g = conv_geometry(x().shape(), inputs[1].shape(), attrs)?;
            check_shape("out_backprop", inputs[2].shape(), &g.output_shape())?;
            let out = float2!(x(), inputs[2], a, dy, T => {
                let (a, dy) = (a.as_standard_layout(), dy.as_standard_layout());
                shaped::<T>(inputs[1].shape(), conv::conv2d_backprop_filter_with(slice(&a), slice(&dy), &g, |n| buffers.take(n)))
            });
            one(out)
        }
        Op::MaxPool(attrs) | Op::AvgPool(attrs) => {
            let g = pool_geometry(x().shape(), attrs)?;
            let max = matches!(op, Op::MaxPool(_));
            one(float!(x(), a, T => {
                let a = a.as_standard_layout();
                let v = if max {
                    pool::max_pool_with::<T>(slice(&a), &g, |n| buffers.take(n))
                } else {
                    pool::avg_pool::<T>(slice(&a), &g)
                };
                shaped::<T>(&g.output_shape(), v)
            }))
        }
        Op::MaxPoolGrad(_) => max_pool_grad(op, inputs, false, false, None, buffers),
        Op::MaxPoolGradGrad(attrs) => {
            let g = pool_geometry(x().shape(), attrs)?;
            check_shape("grad", inputs[1].shape(), x().shape())?;
            one(float2!(x(), inputs[1], a, dd, T => {
                let (a, dd) = (a.as_standard_layout(), dd.as_standard_layout());
                shaped::<T>(&g.output_shape(), pool::max_pool_grad_grad(slice(&a), slice(&dd), &g))
            }))
        }
        Op::AvgPoolGrad(attrs) => {
            let g = pool_geometry(x().shape(), attrs)?;
            check_shape("grad", inputs[1].shape(), &g.output_shape())?;
            one(float!(inputs[1], dy, T => {
                let dy = dy.as_standard_layout();
                shaped::<T>(x().shape(), pool::avg_pool_grad(slice(&dy), &g))
            }))
        }
        Op::DepthwiseConv2dNative(attrs) => {
            let g = conv_geometry(x().shape(), inputs[1].shape(), attrs)?;
            let mut shape = g.output_shape();
            shape[3] = g.in_c * g.out_c;
            one(float2!(x(), inputs[1], a, f, T => {
                let (a, f) = (a.as_standard_layout(), f.as_standard_layout());
                shaped::<T>(&shape, depthwise::forward(slice(&a), slice(&f), &g))
            }))
        }
        Op::DepthwiseConv2dNativeBackpropInput(attrs) | Op::DepthwiseConv2dNativeBackpropFilter(attrs) => {
            let (x, f, dy) = (x(), inputs[1], inputs[2]);
            let g = conv_geometry(x.shape(), f.shape(), attrs)?;
            let mut want = g.output_shape();
            want[3] = g.in_c * g.out_c;
            check_shape("out_backprop", dy.shape(), &want)?;
            let input = matches!(op, Op::DepthwiseConv2dNativeBackpropInput(_));
            let (keep, shape) = if input { (f, x.shape().to_vec()) } else { (x, f.shape().to_vec()) };
            one(float2!(keep, dy, a, d, T => {
                let (a, d) = (a.as_standard_layout(), d.as_standard_layout());
                let out = if input {
                    depthwise::backprop_input(slice(&d), slice(&a), &g)
                } else {
                    depthwise::backprop_filter(slice(&a), slice(&d), &g)
                };
                shaped::<T>(&shape, out)
            }))
        }
        Op::ScalarSummary { tags } => {
            let v = x().scalar_f64().ok_or_else(|| KernelError("a scalar summary takes one value".into()))?;
            one(string(ksummary::scalar(tags, v)))
        }
        Op::HistogramSummary { tag } => one(string(ksummary::histogram(tag, x().to_f64_vec().into_iter())?)),
        Op::ImageSummary { tag, max_images } => {
            let bytes = match x() {
                Value::F32(a) => ksummary::images(tag, &a.view(), *max_images)?,
                v => ksummary::images(tag, &cast(v, DType::F32)?.as_f32().expect("cast to f32").view(), *max_images)?,
            };
            one(string(bytes))
        }
        Op::MergeSummary => {
            let parts = inputs
                .iter()
                .map(|v| v.as_string().and_then(|a| a.iter().next()).map(Vec::as_slice))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| KernelError("merge takes summaries (string scalars)".into()))?;
            one(string(ksummary::merge(parts.into_iter())?))
        }
        Op::Placeholder { .. }
        | Op::Const { .. }
        | Op::RandomUniform { .. }
        | Op::TruncatedNormal { .. }
        | Op::RandomStandardNormal { .. }
        | Op::RandomUniformLike { .. }
        | Op::VariableV2 { .. }
        | Op::Assign
        | Op::AssignAdd
        | Op::AssignSub
        | Op::Apply(_)
        | Op::While { .. }
        | Op::If { .. }
        | Op::WhileGrad { .. }
        | Op::Switch
        | Op::Merge
        | Op::NoOp => Err(KernelError(format!("{} is executed by the session, not as a kernel", op.type_name()))),
    }
}

/// The gradient and, when asked for (`image_sums` `[batch, channels]`), the bias gradient from
/// each image's sums.
/// An empty `dx` (not kept, see [`conv::LowerFilterGrad`]) comes as an empty tensor.
fn with_bias_sum<T: tensorgraph_kernels::Float + tensorgraph_graph::Element>(
    shape: &[usize],
    dx: Vec<T>,
    image_sums: Option<Vec<T>>,
) -> Vec<Value> {
    let channels = shape.last().copied().unwrap_or(0);
    let sums = image_sums.map(|p| bias_sum_of(p, channels));
    let dx = if dx.is_empty() { shaped::<T>(&[0], dx) } else { shaped::<T>(shape, dx) };
    std::iter::once(T::wrap(dx)).chain(sums).collect()
}

/// `MaxPoolGrad`, masked by `ReluGrad` of its pooled input when `relu_of_x`; with `bias_sum`,
/// also its sum over all axes but the channels. With `winners` (the pooled input's rows and
/// columns), its first input is the forward's winners (see `Fused::Winners`).
pub fn max_pool_grad(
    op: &Op,
    inputs: &[&Value],
    relu_of_x: bool,
    bias_sum: bool,
    winners: Option<[usize; 2]>,
    buffers: &mut BufferPool,
) -> KResult<Vec<Value>> {
    let Op::MaxPoolGrad(attrs) = op else {
        kbail!("{} is not MaxPoolGrad", op.type_name());
    };
    if let Some([in_h, in_w]) = winners {
        let (Value::I32(wins), dy) = (inputs[0], inputs[1]) else {
            kbail!("MaxPoolGrad from winners takes int32 winners and the gradient");
        };
        let &[n, _, _, c] = wins.shape() else { kbail!("winners of rank {}", wins.ndim()) };
        let x_shape = [n, in_h, in_w, c];
        let g = pool_geometry(&x_shape, attrs)?;
        check_shape("winners", wins.shape(), &g.output_shape())?;
        check_shape("grad", dy.shape(), &g.output_shape())?;
        let wins = wins.as_standard_layout();
        let wins = wins.as_slice().expect("standard layout");
        fn routed<T: tensorgraph_kernels::Float + tensorgraph_graph::Element>(
            dy: &ArrayD<T>,
            wins: &[i32],
            g: &PoolGeometry,
            relu: bool,
            bias_sum: bool,
            buffers: &mut BufferPool,
        ) -> Vec<Value> {
            let d = dy.as_standard_layout();
            let mut sums = bias_sum.then(|| vec![T::zero(); g.batch * g.channels]);
            let dx =
                pool::max_pool_grad_from_winners(wins, slice(&d), g, |n| buffers.take(n), relu, sums.as_deref_mut());
            with_bias_sum(&[g.batch, g.in_h, g.in_w, g.channels], dx, sums)
        }
        return match dy {
            Value::F32(d) => Ok(routed(d, wins, &g, relu_of_x, bias_sum, buffers)),
            Value::F64(d) => Ok(routed(d, wins, &g, relu_of_x, bias_sum, buffers)),
            other => kbail!("expected float32 or float64, got {}", other.dtype()),
        };
    }
    let x = inputs[0];
    let g = pool_geometry(x.shape(), attrs)?;
    check_shape("grad", inputs[1].shape(), &g.output_shape())?;
    Ok(float2!(x, inputs[1], a, dy, T => values {
        let (a, dy) = (a.as_standard_layout(), dy.as_standard_layout());
        let mut sums = bias_sum.then(|| vec![T::zero(); g.batch * g.channels]);
        let dx = pool::max_pool_grad_with(slice(&a), slice(&dy), &g, |n| buffers.take(n), relu_of_x, sums.as_deref_mut());
        with_bias_sum(x.shape(), dx, sums)
    }))
}

/// Runs a `Conv2DBackpropInput`, and what the planner folded into it (see
/// `Fused::InputGrad`): the `ReluGrad` reading it (the features are a fourth input), inside the
/// kernel when the features have the gradient's shape and dtype, as the separate op otherwise
/// (broadcasting); with `bias_sum`, the result's sum over all axes but the channels; with
/// `lower` (the attributes of the Conv2DBackpropFilter of the convolution below, whose input
/// and filter are the next two inputs), that filter gradient, and the first output (the input
/// gradient, which nothing else reads) is left empty when the kernel makes the filter gradient
/// from its chunks; with `filter`, this convolution's filter gradient (from the next two
/// inputs: its input and filter sizes); with `routed`, `dy` routed from the winners (the third
/// input) and the pooled gradient (the last), and that routing's sum. Whatever the kernel
/// cannot take (other shapes or dtypes) runs as the separate op, its errors naming it.
pub fn backprop_input_relu_grad(
    op: &Op,
    inputs: &[&Value],
    bias_sum: bool,
    lower: Option<&ConvAttrs>,
    filter: bool,
    routed: Option<crate::plan::Routed>,
    buffers: &mut BufferPool,
) -> KResult<Vec<Value>> {
    let Op::Conv2DBackpropInput(attrs) = op else {
        kbail!("{} is not Conv2DBackpropInput", op.type_name());
    };
    let x = inputs[0];
    let g = conv_geometry(x.shape(), inputs[1].shape(), attrs)?;
    let folded = |what: &'static str| move |e: KernelError| KernelError(format!("folded {what}: {}", e.0));
    let lower_inputs = lower.map(|a| (a, inputs[4], inputs[5]));
    let own_inputs =
        filter.then(|| (inputs[4 + 2 * lower.is_some() as usize], inputs[5 + 2 * lower.is_some() as usize]));
    // `dy`: given; or routed in the kernel from the pooled gradient (the last input), through
    // the winners; or, where the shapes do not fit, made here by the MaxPoolGrad.
    let (mut made_dy, mut routed_sum) = (None, None);
    let pooled = match routed {
        Some(r) => {
            let (wins, grad) = (inputs[2], inputs[inputs.len() - 1]);
            let fits = |pg: &PoolGeometry| {
                [g.out_h, g.out_w] == r.input
                    && matches!(wins, Value::I32(_))
                    && wins.shape() == pg.output_shape()
                    && grad.shape() == pg.output_shape()
                    && grad.dtype() == inputs[1].dtype()
                    && own_inputs.is_none_or(|(hx, sizes)| own_fits(hx, sizes, inputs[1], x))
            };
            let pg = pool_geometry(&g.output_shape(), &r.attrs).ok().filter(fits);
            if pg.is_none() {
                let op = Op::MaxPoolGrad(r.attrs);
                let mut out = max_pool_grad(&op, &[wins, grad], r.relu, r.bias_sum, Some(r.input), buffers)
                    .map_err(folded("MaxPoolGrad"))?;
                routed_sum = if r.bias_sum { out.pop() } else { None };
                made_dy = out.pop();
            }
            pg.map(|pg| (pg, r))
        }
        None => None,
    };
    let dy = match (&pooled, &made_dy) {
        (Some(_), _) => inputs[inputs.len() - 1],
        (None, Some(made)) => made,
        (None, None) => inputs[2],
    };
    if pooled.is_none() {
        check_shape("out_backprop", dy.shape(), &g.output_shape())?;
    }
    let winners = match (&pooled, inputs[2]) {
        (Some(_), Value::I32(w)) => Some(w.as_standard_layout()),
        _ => None,
    };
    let features = inputs.get(3).copied();
    let in_kernel = features.filter(|f| f.shape() == x.shape() && f.dtype() == dy.dtype());
    // This convolution's filter gradient in the kernel: its input of the gradient's dtype, and
    // its input's and filter's shapes this input gradient's (else as the separate op).
    let own_in_kernel = own_inputs.filter(|(hx, sizes)| hx.dtype() == dy.dtype() && own_fits(hx, sizes, inputs[1], x));
    // The lower filter gradient in the kernel: the features masking there, its input of the
    // gradient's dtype and its output this convolution's input.
    let lower_g = match lower_inputs {
        Some((a, lx, lf)) if in_kernel.is_some() && lx.dtype() == dy.dtype() => {
            let lg = conv_geometry(lx.shape(), lf.shape(), a).map_err(folded("Conv2DBackpropFilter"))?;
            (lg.output_shape()[..] == *x.shape()).then_some(lg)
        }
        _ => None,
    };
    let in_kernel_sum = bias_sum && (features.is_none() || in_kernel.is_some());
    let (mut dx, mut sum, mut lower_dw, mut own_dw, kernel_routed_sum) = float2!(inputs[1], dy, f, dy, T => values {
        use tensorgraph_graph::Element;
        let (f, dy) = (f.as_standard_layout(), dy.as_standard_layout());
        let relu = standard::<T>(in_kernel);
        let mut sums = in_kernel_sum.then(|| vec![T::zero(); g.batch * g.in_c]);
        let (dy, relu) = (slice(&dy), relu.as_ref().map(slice));
        let lx = standard::<T>(lower_g.and(lower_inputs).map(|(_, lx, _)| lx));
        let mut dw = lower_g.map(|lg| buffers.take::<T>(lg.taps() * lg.out_c));
        let fold = lower_g.as_ref().zip(lx.as_ref()).zip(dw.as_deref_mut()).map(|((geometry, lx), out)| {
            conv::LowerFilterGrad { x: slice(lx), geometry, out, keep_input_grad: false }
        });
        let hx = standard::<T>(own_in_kernel.map(|(hx, _)| hx));
        let mut own_dw = hx.as_ref().map(|_| buffers.take::<T>(g.taps() * g.out_c));
        let own = hx.as_ref().zip(own_dw.as_deref_mut()).map(|(hx, out)| conv::FilterGrad { x: slice(hx), out });
        let mut routed_sums = pooled.filter(|(_, r)| r.bias_sum).map(|_| vec![T::zero(); g.batch * g.out_c]);
        let upstream = match (&pooled, &winners) {
            (Some((geometry, r)), Some(w)) => conv::Upstream::Pooled(conv::PooledGrad {
                winners: slice(w),
                grad: dy,
                geometry,
                relu: r.relu,
                image_sums: routed_sums.as_deref_mut(),
            }),
            _ => dy.into(),
        };
        let with = conv::InputGradWith { relu_features: relu, image_sums: sums.as_deref_mut(), lower: fold, filter: own };
        let dx = conv::conv2d_backprop_input_with(slice(&f), upstream, &g, |n| buffers.take(n), with);
        let dx = if dx.is_empty() { shaped::<T>(&[0], dx) } else { shaped::<T>(x.shape(), dx) };
        let filter_shape = |g: &Conv2dGeometry| [g.k_h, g.k_w, g.in_c, g.out_c];
        (
            T::wrap(dx),
            sums.map(|s| bias_sum_of(s, g.in_c)),
            lower_g.zip(dw).map(|(lg, dw)| Value::from(shaped::<T>(&filter_shape(&lg), dw))),
            own_dw.map(|dw| Value::from(shaped::<T>(&filter_shape(&g), dw))),
            routed_sums.map(|s| bias_sum_of(s, g.out_c)),
        )
    });
    if let Some(f) = features.filter(|_| in_kernel.is_none()) {
        dx = first(compute(&Op::Binary(BinaryOp::ReluGrad), &[&dx, f], buffers)?);
    }
    if bias_sum && sum.is_none() {
        // The mask ran as its own op (features broadcast): sum its result.
        let op = Op::Reduce { op: ReduceOp::Sum, axes: vec![0, 1, 2], keep_dims: false };
        sum = Some(first(compute(&op, &[&dx], buffers)?));
    }
    if let Some((a, lx, lf)) = lower_inputs.filter(|_| lower_dw.is_none()) {
        let op = Op::Conv2DBackpropFilter(*a);
        lower_dw = Some(first(compute(&op, &[lx, lf, &dx], buffers).map_err(folded("Conv2DBackpropFilter"))?));
    }
    if let Some((hx, sizes)) = own_inputs.filter(|_| own_dw.is_none()) {
        let op = Op::Conv2DBackpropFilter(*attrs);
        own_dw = Some(first(compute(&op, &[hx, sizes, dy], buffers).map_err(folded("Conv2DBackpropFilter"))?));
    }
    Ok([Some(dx), sum, lower_dw, own_dw, routed_sum.or(kernel_routed_sum)].into_iter().flatten().collect())
}

/// Whether a convolution's filter gradient from input `hx` and filter sizes `sizes` is the one
/// of the input gradient of input `x` and filter `w` (the kernel makes both).
fn own_fits(hx: &Value, sizes: &Value, w: &Value, x: &Value) -> bool {
    hx.shape() == x.shape() && sizes.shape() == w.shape()
}

/// A float input in standard layout, if of dtype `T`.
fn standard<T: tensorgraph_graph::Element>(v: Option<&Value>) -> Option<ndarray::CowArray<'_, T, ndarray::IxDyn>> {
    v.and_then(T::unwrap_ref).map(|a| a.as_standard_layout())
}

/// The first output of a one-output op.
fn first(mut out: Vec<Value>) -> Value {
    out.swap_remove(0)
}

/// A bias gradient `[channels]` from each image's sums `[batch, channels]`.
fn bias_sum_of<T: tensorgraph_kernels::Float + tensorgraph_graph::Element>(
    image_sums: Vec<T>,
    channels: usize,
) -> Value {
    T::wrap(shaped::<T>(&[channels], tensorgraph_kernels::reduce::image_sums(&image_sums, channels)))
}

/// Runs a `Conv2D` or `MatMul` with the epilogue the planner folded into it: a bias (the third
/// input, if any), then ReLU when `relu`. Plain runs of these ops come here with neither. A
/// Conv2D's folded MaxPool (`max_pool`) is its second output; its first is the convolution's
/// output when `keep_output`, else the pooled windows' winners when `max_pool.1` (see
/// `Fused::Epilogue`), else an empty placeholder nobody reads. With `below`, a Conv2D's first
/// input is the input of the convolution below (its filter, and bias, the last inputs).
pub fn compute_fused(
    op: &Op,
    inputs: &[&Value],
    relu: bool,
    max_pool: Option<(&PoolAttrs, bool)>,
    keep_output: bool,
    below: Option<&crate::plan::Below>,
    buffers: &mut BufferPool,
) -> KResult<Vec<Value>> {
    let (inputs, under) = inputs.split_at(inputs.len() - below.map_or(0, |b| 1 + usize::from(b.bias)));
    let (x, y) = (inputs[0], inputs[1]);
    // The epilogue reads the bias as a slice: one fed in another layout is copied first.
    let relaid = inputs.get(2).filter(|b| !b.is_standard_layout()).map(|b| b.to_standard_layout());
    let bias = relaid.as_ref().or(inputs.get(2).copied());
    let relaid_under = under.get(1).filter(|b| !b.is_standard_layout()).map(|b| b.to_standard_layout());
    let bias_under = relaid_under.as_ref().or(under.get(1).copied());
    fn epilogue<'a, T: Float + tensorgraph_graph::Element>(
        bias: Option<&'a Value>,
        relu: bool,
        columns: usize,
    ) -> KResult<Epilogue<'a, T>> {
        let bias = match bias {
            None => None,
            Some(b) => match T::unwrap_ref(b).and_then(|a| a.as_slice()) {
                Some(s) if b.shape() == [columns] => Some(s),
                _ => kbail!(
                    "bias {} {} does not match the output's last dimension {columns}",
                    b.dtype(),
                    karray::fmt_shape(b.shape())
                ),
            },
        };
        Ok(Epilogue { bias, relu })
    }
    let out = match op {
        Op::Conv2D(attrs) => {
            // The convolution below, if folded: its geometry, and x is its input.
            let below = below
                .map(|b| {
                    conv_geometry(x.shape(), under[0].shape(), &b.attrs)
                        .map(|g| (b, g))
                        .map_err(|e| KernelError(format!("folded Conv2D below: {}", e.0)))
                })
                .transpose()?;
            let x_shape = below.as_ref().map_or(x.shape().to_vec(), |(_, g)| g.output_shape().to_vec());
            let g = conv_geometry(&x_shape, y.shape(), attrs)?;
            // The folded MaxPool's window checked against the convolution's output (its own
            // node is folded away: the error says whose window it is).
            let pg = max_pool
                .map(|(a, _)| {
                    pool_geometry(&g.output_shape(), a).map_err(|e| KernelError(format!("folded MaxPool: {}", e.0)))
                })
                .transpose()?;
            let winners = max_pool.is_some_and(|(_, w)| w) && !keep_output;
            let keep_output = keep_output || pg.is_none();
            return Ok(float2!(x, y, a, f, T => values {
                let (a, f) = (a.as_standard_layout(), f.as_standard_layout());
                let epi = epilogue::<T>(bias, relu, g.out_c)?;
                let pooled_len = pg.map_or(0, |pg| pg.output_shape().iter().product());
                let mut pooled = buffers.take::<T>(pooled_len);
                let mut wins = winners.then(|| buffers.take::<i32>(pooled_len));
                let pool = pg.as_ref().map(|geometry| conv::PoolInto {
                    geometry,
                    pooled: &mut pooled,
                    winners: wins.as_deref_mut(),
                    keep_output,
                });
                let out = match &below {
                    None => conv::conv2d_pool_with(slice(&a), slice(&f), &g, |n| buffers.take(n), epi, pool),
                    Some((b, bg)) => {
                        let Some(w) = <T as tensorgraph_graph::Element>::unwrap_ref(under[0]) else {
                            kbail!("folded Conv2D below: filter {} is not {}", under[0].dtype(), x.dtype());
                        };
                        let w = w.as_standard_layout();
                        let epi_below = Epilogue { relu: b.relu, ..epilogue::<T>(bias_under, false, bg.out_c)? };
                        let below = conv::Below { x: slice(&a), w: slice(&w), geometry: bg, epilogue: epi_below };
                        conv::conv2d_after_with(below, slice(&f), &g, |n| buffers.take(n), epi, pool)
                    }
                };
                let first = match (keep_output, pg, wins) {
                    (false, Some(pg), Some(w)) => Value::from(shaped::<i32>(&pg.output_shape(), w)),
                    (false, _, _) => Value::from(shaped::<T>(&[0], out)),
                    (true, _, _) => Value::from(shaped::<T>(&g.output_shape(), out)),
                };
                let pooled = pg.map(|pg| Value::from(shaped::<T>(&pg.output_shape(), pooled)));
                std::iter::once(first).chain(pooled).collect()
            }));
        }
        Op::MatMul { transpose_a, transpose_b } => {
            let columns = if *transpose_b { y.shape().first() } else { y.shape().get(1) };
            float2!(x, y, a, b, T => {
                let epi = epilogue::<T>(bias, relu, columns.copied().unwrap_or(0))?;
                let (a, b) = (two(a)?, two(b)?);
                gemm::matmul_with::<T>(a, b, *transpose_a, *transpose_b, |n| buffers.take(n), epi)?.into_dyn()
            })
        }
        other => kbail!("{} has no fused form", other.type_name()),
    };
    Ok(vec![out])
}

/// A MatMul input as a matrix.
fn two<T: Float>(a: &ArrayD<T>) -> KResult<ndarray::ArrayView2<'_, T>> {
    a.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| KernelError(format!("MatMul needs rank-2 inputs, got {}", karray::fmt_shape(a.shape()))))
}

/// A MatMul's factors as they multiply (`m x k` and `k x n`), after its transposes.
type Factors<'a, T> = (ndarray::ArrayView2<'a, T>, ndarray::ArrayView2<'a, T>);
fn factors<'a, T: Float>(a: &'a ArrayD<T>, b: &'a ArrayD<T>, ta: bool, tb: bool) -> KResult<Factors<'a, T>> {
    let (a, b) = (two(a)?, two(b)?);
    Ok((if ta { a.reversed_axes() } else { a }, if tb { b.reversed_axes() } else { b }))
}

/// `sum += MatMul(x, y)` in place (see [`crate::plan::Fused::AddTo`]): the product's chains
/// added to the sum's elements, as AddN adds a finished product.
pub fn matmul_add_to(op: &Op, [x, y]: [&Value; 2], sum: &mut Value) -> KResult<()> {
    let Op::MatMul { transpose_a, transpose_b } = op else { kbail!("{} has no accumulating form", op.type_name()) };
    fn add<T: Float>(a: &ArrayD<T>, b: &ArrayD<T>, ta: bool, tb: bool, sum: &mut ArrayD<T>) -> KResult<()> {
        let (a, b) = factors(a, b, ta, tb)?;
        if a.ncols() != b.nrows() || sum.shape() != [a.nrows(), b.ncols()] || !sum.is_standard_layout() {
            kbail!(
                "AddN of products: [{},{}] x [{},{}] (after transposes) onto a sum of shape {}",
                a.nrows(),
                a.ncols(),
                b.nrows(),
                b.ncols(),
                karray::fmt_shape(sum.shape())
            );
        }
        let c = sum.view_mut().into_dimensionality::<Ix2>().expect("rank 2, checked");
        gemm::gemm_into(a, b, c, true, true);
        Ok(())
    }
    match (x, y, sum) {
        (Value::F32(a), Value::F32(b), Value::F32(s)) => add(a, b, *transpose_a, *transpose_b, s),
        (Value::F64(a), Value::F64(b), Value::F64(s)) => add(a, b, *transpose_a, *transpose_b, s),
        (x, y, s) => kbail!(
            "AddN of products: expected float tensors of one dtype, got {}, {} and {}",
            x.dtype(),
            y.dtype(),
            s.dtype()
        ),
    }
}

/// The block `Slice(MatMul(x, y), begin, size)` of a product, from the rows of A and the columns
/// of B that make it (see [`crate::plan::Fused::Block`]): the same bits, each element being the
/// same chain over k.
pub fn matmul_block(
    op: &Op,
    inputs: &[&Value],
    begin: [usize; 2],
    size: [i64; 2],
    buffers: &mut BufferPool,
) -> KResult<Vec<Value>> {
    let Op::MatMul { transpose_a, transpose_b } = op else { kbail!("{} has no sliced form", op.type_name()) };
    let out = float2!(inputs[0], inputs[1], a, b, T => {
        let (a, b) = factors(a, b, *transpose_a, *transpose_b)?;
        let product = [a.nrows(), b.ncols()];
        let [rows, cols]: [std::ops::Range<usize>; 2] = karray::slice_ranges(&product, &begin, &size)
            .map_err(|e| KernelError(format!("{} (slicing the product)", e.0)))?
            .try_into()
            .expect("two ranges");
        let (a, b) = (a.slice(ndarray::s![rows, ..]), b.slice(ndarray::s![.., cols]));
        gemm::matmul_with::<T>(a, b, false, false, |n| buffers.take(n), Epilogue::NONE)?.into_dyn()
    });
    Ok(vec![out])
}

fn unary(u: UnaryOp, x: &Value, buffers: &mut BufferPool) -> KResult<Value> {
    if u == UnaryOp::LogicalNot {
        let Value::Bool(a) = x else { kbail!("LogicalNot takes bools, got {}", x.dtype()) };
        return Ok(Value::from(a.mapv(|v| !v)));
    }
    if let Value::I32(_) | Value::I64(_) = x {
        return Ok(match u {
            UnaryOp::Neg => numeric!(x, a => ew::map(&a.view(), |v| v.negated())),
            UnaryOp::Abs => numeric!(x, a => ew::map(&a.view(), |v| v.magnitude())),
            UnaryOp::Square => numeric!(x, a => ew::map(&a.view(), |v| v.times(v))),
            UnaryOp::Sign => numeric!(x, a => ew::map(&a.view(), |v| v.signum())),
            _ => kbail!("{} needs a float tensor, got {}", u.type_name(), x.dtype()),
        });
    }
    Ok(float!(x, a, T => unary_float::<T>(u, &a.view(), buffers)))
}

fn select(c: &Value, t: &Value, e: &Value) -> KResult<Value> {
    let Value::Bool(c) = c else { kbail!("condition must be bool, got {}", c.dtype()) };
    let c = &c.view();
    Ok(match (t, e) {
        (Value::F32(a), Value::F32(b)) => Value::from(ew::select(c, &a.view(), &b.view())?),
        (Value::F64(a), Value::F64(b)) => Value::from(ew::select(c, &a.view(), &b.view())?),
        (Value::I32(a), Value::I32(b)) => Value::from(ew::select(c, &a.view(), &b.view())?),
        (Value::I64(a), Value::I64(b)) => Value::from(ew::select(c, &a.view(), &b.view())?),
        (Value::Bool(a), Value::Bool(b)) => Value::from(ew::select(c, &a.view(), &b.view())?),
        (t, e) => kbail!("branches differ in dtype: {} and {}", t.dtype(), e.dtype()),
    })
}

/// Out of place over any layout.
struct MapView<'a, 'b, T>(&'a ArrayViewD<'b, T>);
impl<T: Float> Map<T> for MapView<'_, '_, T> {
    type Out = ArrayD<T>;
    fn map<F: Fn(T) -> T + Copy + Send + Sync>(self, f: F) -> ArrayD<T> {
        ew::map(self.0, f)
    }
}

/// From a contiguous input into a recycled buffer.
struct MapInto<'a, T> {
    x: &'a [T],
    out: &'a mut [T],
}
impl<T: Float> Map<T> for MapInto<'_, T> {
    type Out = ();
    fn map<F: Fn(T) -> T + Copy + Send + Sync>(self, f: F) {
        ew::map_into(self.x, self.out, f)
    }
}

/// In place, on a value nobody else reads.
struct MapInPlace<'a, T>(&'a mut ArrayD<T>);
impl<T: Float> Map<T> for MapInPlace<'_, T> {
    type Out = ();
    fn map<F: Fn(T) -> T + Copy + Send + Sync>(self, f: F) {
        ew::map_in_place(self.0, f)
    }
}

/// Two operands of one shape and layout into a recycled buffer.
struct ZipInto<'a, T> {
    x: &'a [T],
    y: &'a [T],
    out: &'a mut [T],
}
impl<T: Float> Zip<T> for ZipInto<'_, T> {
    type Out = ();
    fn zip<F: Fn(T, T) -> T + Copy + Send + Sync>(self, f: F) {
        ew::zip_into(self.x, self.y, self.out, f)
    }
}

/// Two operands broadcast together, out of place.
struct ZipBroadcast<'a, 'b, T>(&'a ArrayViewD<'b, T>, &'a ArrayViewD<'b, T>);
impl<T: Float> Zip<T> for ZipBroadcast<'_, '_, T> {
    type Out = KResult<ArrayD<T>>;
    fn zip<F: Fn(T, T) -> T + Copy + Send + Sync>(self, f: F) -> KResult<ArrayD<T>> {
        ew::zip_broadcast(self.0, self.1, f)
    }
}

/// In place on the first operand, the second broadcast to it.
struct ZipInPlace<'a, 'b, T>(&'a mut ArrayD<T>, ArrayViewD<'b, T>);
impl<T: Float> Zip<T> for ZipInPlace<'_, '_, T> {
    type Out = KResult<()>;
    fn zip<F: Fn(T, T) -> T + Copy + Send + Sync>(self, f: F) -> KResult<()> {
        ew::zip_in_place(self.0, &self.1, f)
    }
}

fn unary_float<T: Float>(u: UnaryOp, a: &ArrayViewD<T>, buffers: &mut BufferPool) -> ArrayD<T> {
    let Some(x) = a.as_slice() else {
        return unary_fn(u, MapView(a));
    };
    let mut out = buffers.take(x.len());
    unary_fn(u, MapInto { x, out: &mut out });
    shaped(a.shape(), out)
}

/// The first input itself, shared, when the op would copy it unchanged: identities, and a
/// broadcast or its adjoint between equal shapes (most of an RNN's bias and gate gradients).
pub fn passes_through(op: &Op, inputs: &[Option<Arc<Value>>]) -> Option<Arc<Value>> {
    let first = inputs.first()?.as_ref()?;
    let same_shape = || inputs.get(1).and_then(|v| v.as_ref()).is_some_and(|v| v.shape() == first.shape());
    match op {
        Op::Identity | Op::StopGradient | Op::PlaceholderWithDefault => Some(first.clone()),
        Op::SumToShape | Op::BroadcastTo if same_shape() => Some(first.clone()),
        _ => None,
    }
}

/// Runs an element-wise op in place on its first input when the output has that input's shape
/// and dtype (the session hands over inputs nobody else reads). `None`: not applicable.
pub fn compute_in_place(op: &Op, x: &mut Value, rest: &[&Value]) -> Option<KResult<()>> {
    if let Some(target) = reshape_target(op, x.shape()) {
        // Reshapes of a value nobody else holds relabel its buffer instead of copying it.
        return Some(target.and_then(|t| {
            let owned = std::mem::replace(x, Value::Bool(ArrayD::from_elem(ndarray::IxDyn(&[]), false)));
            *x = with_array!(owned, a => Value::from(karray::reshape(a, &t)?));
            Ok(())
        }));
    }
    fn go<T: Float + tensorgraph_graph::Element>(op: &Op, x: &mut Value, rest: &[&Value]) -> Option<KResult<()>> {
        let a = T::unwrap_mut(x)?;
        match op {
            Op::Unary(u) => {
                unary_fn(*u, MapInPlace(a));
                Some(Ok(()))
            }
            Op::Binary(_) | Op::BiasAdd => {
                let b = if let Op::Binary(b) = op { *b } else { BinaryOp::Add };
                let y = T::unwrap_ref(rest[0])?;
                let bias_ok = !matches!(op, Op::BiasAdd) || (y.ndim() == 1 && a.shape().last() == y.shape().first());
                if !bias_ok || ew::broadcast_shape(a.shape(), y.shape()).ok()? != a.shape() {
                    return None;
                }
                binary_fn(b, ZipInPlace(a, y.view()))
            }
            _ => None,
        }
    }
    match x.dtype() {
        DType::F32 => go::<f32>(op, x, rest),
        DType::F64 => go::<f64>(op, x, rest),
        _ => None,
    }
}

fn binary(b: BinaryOp, x: &Value, y: &Value, buffers: &mut BufferPool) -> KResult<Value> {
    if b.is_logical() {
        let (Value::Bool(p), Value::Bool(q)) = (x, y) else {
            kbail!("{} takes bools, got {} and {}", b.type_name(), x.dtype(), y.dtype())
        };
        let and = b == BinaryOp::LogicalAnd;
        return Ok(Value::from(ew::zip_broadcast(&p.view(), &q.view(), |u, v| if and { u && v } else { u || v })?));
    }
    if let Some(test) = comparison(b) {
        // Inference refuses ordering comparisons of bools; equality is allowed.
        return Ok(match (x, y) {
            (Value::Bool(p), Value::Bool(q)) => Value::from(compare(p, q, test)?),
            _ => numeric2!(x, y, p, q => compare(p, q, test)?),
        });
    }
    if x.dtype().is_float() {
        return Ok(float2!(x, y, p, q, _T => {
            let (p, q) = (p.view(), q.view());
            let arithmetic = "comparisons returned above";
            match (p.as_slice(), q.as_slice()) {
                (Some(ps), Some(qs)) if p.shape() == q.shape() => {
                    let mut out = buffers.take(ps.len());
                    binary_fn(b, ZipInto { x: ps, y: qs, out: &mut out }).expect(arithmetic);
                    shaped(p.shape(), out)
                }
                _ => binary_fn(b, ZipBroadcast(&p, &q)).expect(arithmetic)?,
            }
        }));
    }
    // Integers: wrapping arithmetic as TF's kernels (`Arith`).
    Ok(match b {
        BinaryOp::Add => numeric2!(x, y, p, q => ew::zip_broadcast(&p.view(), &q.view(), |u, v| u.plus(v))?),
        BinaryOp::Sub => numeric2!(x, y, p, q => ew::zip_broadcast(&p.view(), &q.view(), |u, v| u.minus(v))?),
        BinaryOp::Mul => numeric2!(x, y, p, q => ew::zip_broadcast(&p.view(), &q.view(), |u, v| u.times(v))?),
        BinaryOp::Maximum => {
            numeric2!(x, y, p, q => ew::zip_broadcast(&p.view(), &q.view(), |u, v| if u >= v { u } else { v })?)
        }
        BinaryOp::Minimum => {
            numeric2!(x, y, p, q => ew::zip_broadcast(&p.view(), &q.view(), |u, v| if u <= v { u } else { v })?)
        }
        BinaryOp::Div | BinaryOp::Pow | BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad => {
            kbail!("{} needs float tensors, got {}", b.type_name(), x.dtype())
        }
        BinaryOp::Equal
        | BinaryOp::NotEqual
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual
        | BinaryOp::LogicalAnd
        | BinaryOp::LogicalOr => unreachable!("comparisons and logical ops returned above"),
    })
}

/// A comparison over two arrays of one element type, broadcasting.
fn compare<T: Copy + PartialOrd + Send + Sync>(
    p: &ArrayD<T>,
    q: &ArrayD<T>,
    test: fn(Option<Ordering>) -> bool,
) -> KResult<ArrayD<bool>> {
    ew::zip_broadcast(&p.view(), &q.view(), move |u: T, v: T| test(u.partial_cmp(&v)))
}

fn add_n(inputs: &[&Value]) -> KResult<Value> {
    fn views<'a, T: tensorgraph_graph::Element>(inputs: &'a [&Value]) -> KResult<Vec<ArrayViewD<'a, T>>> {
        inputs
            .iter()
            .map(|v| {
                T::unwrap_ref(v).map(|a| a.view()).ok_or_else(|| KernelError("AddN inputs differ in dtype".into()))
            })
            .collect()
    }
    Ok(match inputs[0].dtype() {
        DType::F32 => Value::from(ew::add_n::<f32>(&views(inputs)?)?),
        DType::F64 => Value::from(ew::add_n::<f64>(&views(inputs)?)?),
        d => kbail!("AddN needs float tensors, got {d}"),
    })
}

fn bias_add(x: &Value, b: &Value, buffers: &mut BufferPool) -> KResult<Value> {
    let (xs, bs) = (x.shape(), b.shape());
    if bs.len() != 1 || xs.last() != bs.first() {
        kbail!("bias {} does not match the last dimension of {}", karray::fmt_shape(bs), karray::fmt_shape(xs));
    }
    binary(BinaryOp::Add, x, b, buffers)
}

fn reduce(op: ReduceOp, x: &Value, axes: &[usize], keep: bool) -> KResult<Value> {
    use kreduce::Reduction;
    let r = match op {
        ReduceOp::Sum | ReduceOp::Mean => Reduction::Sum,
        ReduceOp::Max => Reduction::Max,
        ReduceOp::Min => Reduction::Min,
        ReduceOp::Prod => Reduction::Prod,
    };
    if op == ReduceOp::Mean {
        let n: usize = axes.iter().map(|&a| x.shape().get(a).copied().unwrap_or(1)).product();
        return Ok(float!(x, a, T => {
            let s = kreduce::reduce(&a.view(), axes, keep, r)?;
            s.mapv(|v: T| v / T::of(n as f64))
        }));
    }
    Ok(numeric!(x, a => kreduce::reduce(&a.view(), axes, keep, r)?))
}

/// The run-time target shape of the ops that only relabel a buffer's shape.
fn reshape_target(op: &Op, s: &[usize]) -> Option<KResult<Vec<usize>>> {
    Some(match op {
        Op::Reshape { shape } => karray::reshape_target(s, shape),
        Op::ExpandDims { axis } => {
            let mut t = s.to_vec();
            t.insert((*axis).min(t.len()), 1);
            Ok(t)
        }
        Op::Squeeze { axes } => match axes.iter().find(|&&a| s.get(a) != Some(&1)) {
            Some(a) => Err(KernelError(format!("cannot squeeze axis {a} of shape {}", karray::fmt_shape(s)))),
            None => Ok(s.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()),
        },
        _ => return None,
    })
}

/// Integer labels/indices as i64.
fn as_i64(v: &Value) -> KResult<std::borrow::Cow<'_, ArrayD<i64>>> {
    match v {
        Value::I64(a) => Ok(std::borrow::Cow::Borrowed(a)),
        Value::I32(a) => Ok(std::borrow::Cow::Owned(a.mapv(i64::from))),
        other => kbail!("expected int32 or int64 indices, got {}", other.dtype()),
    }
}

/// The training switch of the batch-norm ops.
pub(crate) fn bool_scalar(v: &Value) -> KResult<bool> {
    match v {
        Value::Bool(a) if a.len() == 1 => Ok(a.iter().next().copied().unwrap_or(false)),
        other => kbail!(
            "training must be a bool scalar, got {} {}",
            other.dtype(),
            tensorgraph_graph::fmt_dims(other.shape())
        ),
    }
}

/// The per-channel vectors of a batch-norm op as slices of `x`'s element type.
fn channel_vectors<'a, T: tensorgraph_graph::Element>(vs: &[&'a Value], c: usize) -> KResult<Vec<&'a [T]>> {
    vs.iter()
        .map(|v| match T::unwrap_ref(v).and_then(|a| a.as_slice()) {
            Some(s) if s.len() == c => Ok(s),
            _ => kbail!("per-channel inputs must be {} vectors of length {c}", v.dtype()),
        })
        .collect()
}

fn batch_norm(inputs: &[&Value], epsilon: f64) -> KResult<Vec<Value>> {
    fn go<T: Float + tensorgraph_graph::Element>(inputs: &[&Value], x: &ArrayD<T>, epsilon: f64) -> KResult<Vec<Value>>
    where
        Value: From<ArrayD<T>>,
    {
        let training = bool_scalar(inputs[5])?;
        let c = x.shape().last().copied().unwrap_or(0);
        let v = channel_vectors::<T>(&inputs[1..5], c)?;
        let xs = x.as_standard_layout();
        let (y, s) =
            tensorgraph_kernels::batch_norm::batch_norm(slice(&xs), c, v[0], v[1], v[2], v[3], epsilon, training);
        let mut out = vec![Value::from(shaped(x.shape(), y))];
        out.extend([s.batch_mean, s.batch_variance, s.mean, s.inv_std].map(|v| Value::from(shaped(&[c], v))));
        Ok(out)
    }
    match inputs[0] {
        Value::F32(x) => go(inputs, x, epsilon),
        Value::F64(x) => go(inputs, x, epsilon),
        other => kbail!("x must be float, got {}", other.dtype()),
    }
}

fn batch_norm_grad(inputs: &[&Value]) -> KResult<Vec<Value>> {
    fn go<T: Float + tensorgraph_graph::Element>(inputs: &[&Value], x: &ArrayD<T>) -> KResult<Vec<Value>>
    where
        Value: From<ArrayD<T>>,
    {
        let training = bool_scalar(inputs[5])?;
        let Some(dy) = T::unwrap_ref(inputs[0]) else { kbail!("dy and x differ in dtype") };
        check_shape("dy", dy.shape(), x.shape())?;
        let c = x.shape().last().copied().unwrap_or(0);
        let v = channel_vectors::<T>(&inputs[2..5], c)?;
        let (dys, xs) = (dy.as_standard_layout(), x.as_standard_layout());
        let (dx, ds, db) =
            tensorgraph_kernels::batch_norm::batch_norm_grad(slice(&dys), slice(&xs), c, v[0], v[1], v[2], training);
        Ok(vec![Value::from(shaped(x.shape(), dx)), Value::from(shaped(&[c], ds)), Value::from(shaped(&[c], db))])
    }
    match inputs[1] {
        Value::F32(x) => go(inputs, x),
        Value::F64(x) => go(inputs, x),
        other => kbail!("x must be float, got {}", other.dtype()),
    }
}

fn sparse_xent(logits: &Value, labels: &Value) -> KResult<Vec<Value>> {
    let l = as_i64(labels)?;
    Ok(match logits {
        Value::F32(a) => {
            let (loss, bp) = knn::sparse_softmax_cross_entropy(&a.view(), &l.view())?;
            vec![loss.into(), bp.into()]
        }
        Value::F64(a) => {
            let (loss, bp) = knn::sparse_softmax_cross_entropy(&a.view(), &l.view())?;
            vec![loss.into(), bp.into()]
        }
        other => kbail!("logits must be float, got {}", other.dtype()),
    })
}

/// `ConcatV2` along an existing axis, or `Pack` (`stack`) along a new one.
fn join(inputs: &[&Value], axis: usize, stack: bool) -> KResult<Value> {
    fn join_as<T: tensorgraph_graph::Element>(inputs: &[&Value], axis: usize, stack: bool) -> KResult<ArrayD<T>> {
        let views = inputs
            .iter()
            .map(|v| T::unwrap_ref(v).map(|a| a.view()).ok_or_else(|| KernelError("inputs differ in dtype".into())))
            .collect::<KResult<Vec<_>>>()?;
        if stack {
            karray::stack(&views, axis)
        } else {
            karray::concat(&views, axis)
        }
    }
    Ok(match inputs[0].dtype() {
        DType::F32 => Value::from(join_as::<f32>(inputs, axis, stack)?),
        DType::F64 => Value::from(join_as::<f64>(inputs, axis, stack)?),
        DType::I32 => Value::from(join_as::<i32>(inputs, axis, stack)?),
        DType::I64 => Value::from(join_as::<i64>(inputs, axis, stack)?),
        DType::Bool => Value::from(join_as::<bool>(inputs, axis, stack)?),
        DType::String => {
            let views = inputs
                .iter()
                .map(|v| v.as_string().map(|a| a.view()).ok_or_else(|| KernelError("inputs differ in dtype".into())))
                .collect::<KResult<Vec<_>>>()?;
            Value::from(if stack { karray::stack(&views, axis)? } else { karray::concat(&views, axis)? })
        }
    })
}

/// `tf.cast`: numeric conversions as Rust's `as` (floats truncate toward zero, saturating);
/// bool is 0/1 one way and `!= 0` the other. Strings cast to nothing else (TF's
/// `string_to_number` is another op).
pub fn cast(x: &Value, to: DType) -> KResult<Value> {
    fn num<A: Copy + AsPrimitive<f32> + AsPrimitive<f64> + AsPrimitive<i32> + AsPrimitive<i64>>(
        a: &ArrayD<A>,
        to: DType,
        nonzero: impl Fn(A) -> bool,
    ) -> Value {
        match to {
            DType::F32 => Value::from(a.mapv(|v| -> f32 { v.as_() })),
            DType::F64 => Value::from(a.mapv(|v| -> f64 { v.as_() })),
            DType::I32 => Value::from(a.mapv(|v| -> i32 { v.as_() })),
            DType::I64 => Value::from(a.mapv(|v| -> i64 { v.as_() })),
            DType::Bool => Value::from(a.mapv(nonzero)),
            DType::String => unreachable!("refused by cast"),
        }
    }
    if x.dtype() == to {
        return Ok(x.clone());
    }
    Ok(match x {
        _ if to == DType::String => kbail!("cannot cast {} to string", x.dtype()),
        Value::F32(a) => num(a, to, |v| v != 0.0),
        Value::F64(a) => num(a, to, |v| v != 0.0),
        Value::I32(a) => num(a, to, |v| v != 0),
        Value::I64(a) => num(a, to, |v| v != 0),
        Value::Bool(a) => num(&a.mapv(u8::from), to, |v| v != 0),
        Value::String(_) => kbail!("cannot cast string to {to}"),
    })
}

/// The one number in a scalar tensor, as f64.
fn scalar(v: &Value) -> KResult<f64> {
    v.scalar_f64()
        .ok_or_else(|| KernelError(format!("expected a scalar, got {} {}", v.dtype(), karray::fmt_shape(v.shape()))))
}

/// A string scalar.
fn string(bytes: Vec<u8>) -> Value {
    Value::from(ndarray::arr0(bytes))
}

fn four(s: &[usize], what: &str) -> KResult<[usize; 4]> {
    s.try_into().map_err(|_| KernelError(format!("{what} must have rank 4, got {}", karray::fmt_shape(s))))
}

fn conv_geometry(x: &[usize], f: &[usize], attrs: &ConvAttrs) -> KResult<Conv2dGeometry> {
    let ConvAttrs { strides, dilations: dil, padding } = *attrs;
    let (x, f) = (four(x, "input")?, four(f, "filter")?);
    if x[3] != f[2] {
        kbail!(
            "input {} has {} channels but filter {} expects {}",
            karray::fmt_shape(&x),
            x[3],
            karray::fmt_shape(&f),
            f[2]
        );
    }
    for a in 0..2 {
        conv::check_window(x[1 + a], f[a], strides[1 + a], dil[1 + a])?;
    }
    let g = Conv2dGeometry::new(x, f, [strides[1], strides[2]], [dil[1], dil[2]], padding == Padding::Same);
    if g.out_h == 0 || g.out_w == 0 {
        kbail!(
            "{} padding leaves no output for input {} and filter {}",
            padding.name(),
            karray::fmt_shape(&x),
            karray::fmt_shape(&f)
        );
    }
    Ok(g)
}

fn pool_geometry(x: &[usize], attrs: &PoolAttrs) -> KResult<PoolGeometry> {
    let PoolAttrs { ksize, strides, padding } = *attrs;
    let x = four(x, "input")?;
    for a in 0..2 {
        conv::check_window(x[1 + a], ksize[1 + a], strides[1 + a], 1)?;
    }
    let g = PoolGeometry::new(x, [ksize[1], ksize[2]], [strides[1], strides[2]], padding == Padding::Same);
    if g.out_h == 0 || g.out_w == 0 {
        kbail!("{} padding leaves no output for input {} and ksize {ksize:?}", padding.name(), karray::fmt_shape(&x));
    }
    Ok(g)
}

fn check_shape(what: &str, got: &[usize], want: &[usize]) -> KResult<()> {
    if got == want {
        Ok(())
    } else {
        kbail!("{what} has shape {} but {} was expected", karray::fmt_shape(got), karray::fmt_shape(want))
    }
}

fn slice<'a, T>(a: &'a ndarray::CowArray<'_, T, ndarray::IxDyn>) -> &'a [T] {
    a.as_slice().expect("standard layout")
}

/// A strided slice's parts and output shape for an input of `shape`.
#[allow(clippy::type_complexity)]
fn resolve_slice(
    spec: &tensorgraph_graph::SliceSpec,
    shape: &[usize],
) -> KResult<(Vec<(usize, usize, isize)>, Vec<usize>)> {
    let dims: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
    let (parts, out) = spec.resolve(&dims).map_err(KernelError)?;
    let parts = parts.into_iter().map(|p| p.map(|p| (p.start, p.len, p.step))).collect::<Option<Vec<_>>>();
    let out = out.into_iter().collect::<Option<Vec<_>>>();
    match (parts, out) {
        (Some(p), Some(o)) => Ok((p, o)),
        _ => kbail!("a slice of a concrete shape left a dimension unresolved"),
    }
}

/// Input `i` as an array of `T` (all of an op's float inputs share one dtype).
fn input_of<'a, T: tensorgraph_graph::Element>(inputs: &[&'a Value], i: usize) -> KResult<&'a ArrayD<T>> {
    T::unwrap_ref(inputs[i]).ok_or_else(|| KernelError(format!("input {i} is {}, not {}", inputs[i].dtype(), T::DTYPE)))
}

fn lstm_block<T: Float + tensorgraph_graph::Element>(
    inputs: &[&Value],
    attrs: lstm::BlockAttrs,
    buffers: &mut BufferPool,
) -> KResult<Vec<Value>> {
    let rank = |i: usize, r: usize| -> KResult<ArrayViewD<'_, T>> {
        let a = input_of::<T>(inputs, i)?;
        if a.ndim() != r {
            kbail!("LSTMBlockCell input {i} must have rank {r}, got {}", karray::fmt_shape(a.shape()));
        }
        Ok(a.view())
    };
    let two = |i| rank(i, 2).map(|a| a.into_dimensionality::<Ix2>().expect("rank 2"));
    let one = |i| rank(i, 1).map(|a| a.into_dimensionality::<ndarray::Ix1>().expect("rank 1"));
    let (x, cs_prev, h_prev, w) = (two(0)?, two(1)?, two(2)?, two(3)?);
    let shape = [x.nrows(), cs_prev.ncols()];
    let out =
        lstm::block_cell(x, cs_prev, h_prev, w, [one(4)?, one(5)?, one(6)?], one(7)?, attrs, |n| buffers.take(n))?;
    buffers.give(out.scratch);
    let parts = [out.i, out.cs, out.f, out.o, out.ci, out.co, out.h];
    Ok(parts.into_iter().map(|v| T::wrap(shaped(&shape, v))).collect())
}

fn lstm_block_grad<T: Float + tensorgraph_graph::Element>(
    inputs: &[&Value],
    use_peephole: bool,
    buffers: &mut BufferPool,
) -> KResult<Vec<Value>> {
    let arrays: Vec<std::borrow::Cow<'_, [T]>> = (0..16)
        .map(|i| {
            let a = input_of::<T>(inputs, i)?;
            Ok(match a.as_slice() {
                Some(s) => std::borrow::Cow::Borrowed(s),
                None => std::borrow::Cow::Owned(a.iter().copied().collect()),
            })
        })
        .collect::<KResult<_>>()?;
    let (batch, cell) = match inputs[1].shape() {
        &[b, c] => (b, c),
        other => kbail!("cs_prev must have rank 2, got {}", karray::fmt_shape(other)),
    };
    let s = |i: usize| -> &[T] { &arrays[i] };
    let lstm::BlockGrads { dicfo, cs_prev_grad, peepholes } = lstm::block_cell_grad(
        s(1),
        [s(4), s(5), s(6)],
        [s(8), s(9), s(10), s(11), s(12), s(13)],
        s(14),
        s(15),
        (batch, cell),
        use_peephole,
        |n| buffers.take(n),
    )?;
    let [pi, pf, po] = peepholes;
    Ok(vec![
        T::wrap(shaped(&[batch, cell], cs_prev_grad)),
        T::wrap(shaped(&[batch, 4 * cell], dicfo)),
        T::wrap(shaped(&[cell], pi)),
        T::wrap(shaped(&[cell], pf)),
        T::wrap(shaped(&[cell], po)),
    ])
}

fn shaped<T>(shape: &[usize], v: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(ndarray::IxDyn(shape), v).expect("kernel returns the element count of its shape")
}
