//! The op set. Each op carries TensorFlow's op type name and attribute names, so TensorFlow's
//! documentation describes it and exports need no translation table.

use crate::{DType, Shape, Value};
use serde::{Deserialize, Serialize};

/// Element-wise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Neg,
    Square,
    Sqrt,
    Rsqrt,
    Abs,
    Sign,
    Reciprocal,
    /// `x` if `x > 0`, else `e^x - 1`.
    Elu,
    /// `scale·elu(x)` with TF's [`UnaryOp::SELU_ALPHA`] and [`UnaryOp::SELU_SCALE`].
    Selu,
    /// `log(1 + e^x)`, computed stably.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// The largest integer not above `x`.
    Floor,
    /// `log(1 + x)`, accurate for small `x`.
    Log1p,
    /// The error function (GELU's ingredient).
    Erf,
    /// `!x` of a bool tensor (TF's `LogicalNot`).
    LogicalNot,
}

impl UnaryOp {
    /// SELU's alpha (TF's, from Klambauer et al. 2017): the one definition the kernel and the
    /// gradient share.
    pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
    /// SELU's scale.
    pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

    /// Every unary op (`tests/common/ops.rs` fails to compile when a variant is added unseen).
    pub const ALL: [UnaryOp; 20] = {
        use UnaryOp::*;
        [
            Relu, Sigmoid, Tanh, Exp, Log, Neg, Square, Sqrt, Rsqrt, Abs, Sign, Reciprocal, Elu, Selu, Softplus,
            Softsign, Floor, Log1p, Erf, LogicalNot,
        ]
    };

    /// The op of TF type `name` (`Relu`, ...).
    pub fn from_type_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|u| u.type_name() == name)
    }

    /// TensorFlow's op type.
    pub fn type_name(self) -> &'static str {
        match self {
            UnaryOp::Relu => "Relu",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Neg => "Neg",
            UnaryOp::Square => "Square",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Rsqrt => "Rsqrt",
            UnaryOp::Abs => "Abs",
            UnaryOp::Sign => "Sign",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Elu => "Elu",
            UnaryOp::Selu => "Selu",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Softsign => "Softsign",
            UnaryOp::Floor => "Floor",
            UnaryOp::Log1p => "Log1p",
            UnaryOp::Erf => "Erf",
            UnaryOp::LogicalNot => "LogicalNot",
        }
    }
}

/// Element-wise functions of two tensors, with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
    /// `ReluGrad(gradients, features)`: gradients where features > 0.
    ReluGrad,
    /// `SigmoidGrad(y, dy)`: dy * y * (1 - y).
    SigmoidGrad,
    /// `TanhGrad(y, dy)`: dy * (1 - y^2).
    TanhGrad,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    /// `x && y` of bool tensors.
    LogicalAnd,
    /// `x || y` of bool tensors.
    LogicalOr,
}

impl BinaryOp {
    /// Every binary op (`tests/common/ops.rs` fails to compile when a variant is added unseen).
    pub const ALL: [BinaryOp; 18] = {
        use BinaryOp::*;
        [
            Add,
            Sub,
            Mul,
            Div,
            Maximum,
            Minimum,
            Pow,
            ReluGrad,
            SigmoidGrad,
            TanhGrad,
            Equal,
            NotEqual,
            Less,
            LessEqual,
            Greater,
            GreaterEqual,
            LogicalAnd,
            LogicalOr,
        ]
    };

    /// The op of TF type `name` (`AddV2`, `RealDiv`, ...; also TF's older `Add` and `Div`).
    pub fn from_type_name(name: &str) -> Option<BinaryOp> {
        match name {
            "Add" => Some(BinaryOp::Add),
            "Div" => Some(BinaryOp::Div), // float division (integer Div is not imported)
            _ => BinaryOp::ALL.into_iter().find(|b| b.type_name() == name),
        }
    }

    /// TensorFlow's op type.
    pub fn type_name(self) -> &'static str {
        match self {
            BinaryOp::Add => "AddV2",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "RealDiv",
            BinaryOp::Maximum => "Maximum",
            BinaryOp::Minimum => "Minimum",
            BinaryOp::Pow => "Pow",
            BinaryOp::ReluGrad => "ReluGrad",
            BinaryOp::SigmoidGrad => "SigmoidGrad",
            BinaryOp::TanhGrad => "TanhGrad",
            BinaryOp::Equal => "Equal",
            BinaryOp::NotEqual => "NotEqual",
            BinaryOp::Less => "Less",
            BinaryOp::LessEqual => "LessEqual",
            BinaryOp::Greater => "Greater",
            BinaryOp::GreaterEqual => "GreaterEqual",
            BinaryOp::LogicalAnd => "LogicalAnd",
            BinaryOp::LogicalOr => "LogicalOr",
        }
    }

    /// True for `LogicalAnd` and `LogicalOr`, which take and give bools.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::LogicalAnd | BinaryOp::LogicalOr)
    }

    /// True for the comparisons, whose output is bool.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::NotEqual
                | BinaryOp::Less
                | BinaryOp::LessEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterEqual
        )
    }
}

/// Reductions over axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    /// The product (TF's `Prod`).
    Prod,
}

impl ReduceOp {
    /// TensorFlow's op type.
    pub fn type_name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "Sum",
            ReduceOp::Mean => "Mean",
            ReduceOp::Max => "Max",
            ReduceOp::Min => "Min",
            ReduceOp::Prod => "Prod",
        }
    }
}

/// TF's `padding` attribute of convolutions and pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, zero (or ignored) cells added evenly, the odd one at the end.
    Same,
    /// Only windows that fit entirely inside the input.
    Valid,
}

impl Padding {
    /// TF's spelling, `SAME` or `VALID`.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Same => "SAME",
            Padding::Valid => "VALID",
        }
    }
}

/// The window of every 2-D convolution op (`Conv2D` and its two gradients): TF's `strides`
/// and `dilations` as NHWC 4-lists (`[1, h, w, 1]`) and `padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvAttrs {
    pub strides: [usize; 4],
    pub dilations: [usize; 4],
    pub padding: Padding,
}

/// The window of every pooling op (max and average, and their gradients): TF's `ksize` and
/// `strides` as NHWC 4-lists and `padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolAttrs {
    pub ksize: [usize; 4],
    pub strides: [usize; 4],
    pub padding: Padding,
}

/// The optimizers' in-place updates, with TF's op names and input orders. The first
/// [`ApplyOp::num_refs`] inputs are the variable and its slots (taken by reference), input
/// [`ApplyOp::grad_input`] is the gradient, and every other input is a scalar hyperparameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApplyOp {
    /// `ApplyGradientDescent(var, alpha, delta)`: `var ← var - alpha·delta`.
    GradientDescent,
    /// `ApplyMomentum(var, accum, lr, grad, momentum)`: `accum ← momentum·accum + g`, then
    /// `var ← var - lr·accum`, or with Nesterov `var ← var - lr·g - lr·momentum·accum`.
    Momentum { use_nesterov: bool },
    /// `ApplyAdagrad(var, accum, lr, grad)`: `accum ← accum + g²`, `var ← var - lr·g/√accum`.
    Adagrad,
    /// `ApplyRMSProp(var, ms, mom, lr, rho, momentum, epsilon, grad)`:
    /// `ms ← ms + (g² - ms)(1-rho)`, `mom ← momentum·mom + lr·g/√(ms + ε)`, `var ← var - mom`.
    RMSProp,
    /// `ApplyCenteredRMSProp(var, mg, ms, mom, lr, rho, momentum, epsilon, grad)`: RMSProp that
    /// also tracks the mean gradient `mg` and divides by `√(ms - mg² + ε)`.
    CenteredRMSProp,
    /// `ApplyAdam(var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad)`:
    /// `lr_t = lr·√(1-β2^t)/(1-β1^t)`, `m ← m + (g - m)(1-β1)`, `v ← v + (g² - v)(1-β2)`,
    /// `var ← var - lr_t·m/(√v + ε)`.
    Adam,
}

impl ApplyOp {
    /// TensorFlow's op type.
    pub fn type_name(self) -> &'static str {
        self.def().name
    }

    /// The variable and its slots: the leading inputs, taken by reference.
    pub fn num_refs(self) -> usize {
        self.def().ref_inputs().count()
    }

    /// Number of inputs, refs included.
    pub fn num_inputs(self) -> usize {
        self.def().inputs.len()
    }

    /// Position of the gradient among the inputs (TF puts Momentum's `momentum` after it).
    pub fn grad_input(self) -> usize {
        let inputs = self.def().inputs;
        inputs.iter().position(|a| matches!(a.name, "grad" | "delta")).expect("every update has a gradient")
    }
}

/// Every op a graph node can hold. Axes are stored normalised (non-negative).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Op {
    // ---- sources --------------------------------------------------------------------------
    Placeholder {
        dtype: DType,
        shape: Shape,
    },
    Const {
        value: Value,
    },
    /// Passes its input through unless fed (TF's `PlaceholderWithDefault`).
    PlaceholderWithDefault,
    /// A tensor of a fixed shape filled with one value (TF's `Fill` with constant dims).
    Fill {
        dtype: DType,
        shape: Vec<usize>,
        value: f64,
    },
    /// Uniform in `[minval, maxval)`; `seed`/`seed2` as TF's graph-level and op-level seeds.
    RandomUniform {
        dtype: DType,
        shape: Vec<usize>,
        minval: f64,
        maxval: f64,
        seed: u64,
        seed2: u64,
    },
    /// Uniform in `[minval, maxval)` with the run-time shape of its input (TF's `RandomUniform`
    /// fed `tf.shape(x)`), for dropout masks over an unknown batch.
    RandomUniformLike {
        dtype: DType,
        minval: f64,
        maxval: f64,
        seed: u64,
        seed2: u64,
    },
    /// Normal with `mean`/`stddev` (TF's `RandomStandardNormal` scaled and shifted).
    RandomStandardNormal {
        dtype: DType,
        shape: Vec<usize>,
        mean: f64,
        stddev: f64,
        seed: u64,
        seed2: u64,
    },
    /// Normal with `mean`/`stddev`, resampled beyond two standard deviations.
    TruncatedNormal {
        dtype: DType,
        shape: Vec<usize>,
        mean: f64,
        stddev: f64,
        seed: u64,
        seed2: u64,
    },

    // ---- state ----------------------------------------------------------------------------
    VariableV2 {
        dtype: DType,
        shape: Vec<usize>,
    },
    /// `Assign(ref, value)`: sets the variable; outputs the new value.
    Assign,
    AssignAdd,
    AssignSub,
    /// An optimizer's in-place update of a variable and its slots (TF's `Apply*` ops).
    Apply(ApplyOp),
    NoOp,
    Identity,
    /// Identity whose gradient is zero.
    StopGradient,

    // ---- math -----------------------------------------------------------------------------
    MatMul {
        transpose_a: bool,
        transpose_b: bool,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// Sum of any number of tensors of one shape.
    AddN,
    /// `SelectV2(condition, t, e)`: `t` where `condition` is true, else `e`; all three
    /// broadcast (`tf.where` with three arguments).
    Select,
    /// Adds a 1-D bias along the last dimension (NHWC).
    BiasAdd,
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    ArgMax {
        axis: usize,
        output_type: DType,
    },
    /// Index of the smallest value along `axis` (the first on ties), as TF's `ArgMin`.
    ArgMin {
        axis: usize,
        output_type: DType,
    },
    Cast {
        to: DType,
    },
    /// Running sums along `axis` (TF's `Cumsum`; the axis input is held here).
    Cumsum {
        axis: usize,
        exclusive: bool,
        reverse: bool,
    },
    /// Running products along `axis` (TF's `Cumprod`).
    Cumprod {
        axis: usize,
        exclusive: bool,
        reverse: bool,
    },
    /// TF's `TopKV2(input)`: the `k` largest entries of each last-axis row and their int32
    /// indices, largest first (the lower index first among equals); `k` is TF's input.
    TopKV2 {
        k: usize,
        sorted: bool,
    },
    /// TF's `BatchMatMulV2(x, y)`: matrix products over the last two axes, the batch axes
    /// broadcast; `adj_x`/`adj_y` transpose those two axes first.
    BatchMatMulV2 {
        adj_x: bool,
        adj_y: bool,
    },

    // ---- nn -------------------------------------------------------------------------------
    /// `x` if `x > 0`, else `alpha·x` (TF's `LeakyRelu`).
    LeakyRelu {
        alpha: f64,
    },
    Softmax,
    LogSoftmax,
    /// Outputs the per-example loss and its gradient w.r.t. the logits (softmax - one_hot).
    SparseSoftmaxCrossEntropyWithLogits,
    /// `FusedBatchNorm(x, scale, offset, mean, variance, training)`: normalises over every axis
    /// but the last with the batch's statistics when the bool scalar `training` is true, else
    /// with `mean` and `variance`. Outputs `y`, the batch mean and (biased) variance, and the
    /// mean and `1/√(variance + ε)` used, for the gradient. (TF's `FusedBatchNormV3` takes
    /// `is_training` as an attribute and picks the op with a cond; the input spares the cond.)
    FusedBatchNorm {
        epsilon: f64,
    },
    /// `FusedBatchNormGrad(dy, x, scale, mean, inv_std, training)` → `dx`, `dscale`, `doffset`.
    FusedBatchNormGrad,
    /// `InTopKV2(predictions, targets)`: whether each target is among the top `k` predictions.
    InTopKV2 {
        k: usize,
    },

    // ---- convolution and pooling (NHWC) -------------------------------------------------
    /// `Conv2D(input, filter)`, filter `[kh, kw, in, out]`.
    Conv2D(ConvAttrs),
    /// `Conv2DBackpropInput(input, filter, out_backprop)`: the input is read for its shape only
    /// (TF passes `input_sizes`).
    Conv2DBackpropInput(ConvAttrs),
    /// `Conv2DBackpropFilter(input, filter, out_backprop)`: the filter is read for its shape only.
    Conv2DBackpropFilter(ConvAttrs),
    /// TF's `DepthwiseConv2dNative(input, filter)`: filter `[kh, kw, in, multiplier]`, each input
    /// channel convolved with its own filters, output channels `in * multiplier`.
    DepthwiseConv2dNative(ConvAttrs),
    /// Its gradient for the input (`input` read for its shape only).
    DepthwiseConv2dNativeBackpropInput(ConvAttrs),
    /// Its gradient for the filter (`filter` read for its shape only).
    DepthwiseConv2dNativeBackpropFilter(ConvAttrs),
    MaxPool(PoolAttrs),
    /// `MaxPoolGrad(orig_input, grad)`: routes `grad` to each window's first maximum.
    MaxPoolGrad(PoolAttrs),
    /// `MaxPoolGradGrad(orig_input, grad_of_input)`: picks the gradient at each window's maximum.
    MaxPoolGradGrad(PoolAttrs),
    AvgPool(PoolAttrs),
    /// `AvgPoolGrad(orig_input, grad)`: the input is read for its shape only.
    AvgPoolGrad(PoolAttrs),

    /// TF's `LSTMBlockCell(x, cs_prev, h_prev, w, wci, wcf, wco, b)`: one LSTM step, one GEMM
    /// over `[x, h_prev]` and one pass over the gates (see `tensorgraph_kernels::lstm`);
    /// outputs `i, cs, f, o, ci, co, h`. `cell_clip` < 0: no clipping.
    LSTMBlockCell {
        forget_bias: f64,
        cell_clip: f64,
        use_peephole: bool,
    },
    /// TF's `LSTMBlockCellGrad`: the step's inputs, its outputs `i, cs, f, o, ci, co`, and the
    /// gradients of `cs` and `h`; outputs `cs_prev_grad, dicfo, wci_grad, wcf_grad, wco_grad`.
    LSTMBlockCellGrad {
        use_peephole: bool,
    },
    // ---- array ----------------------------------------------------------------------------
    /// Reshape to `shape`, in which one entry may be -1.
    Reshape {
        shape: Vec<i64>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    ExpandDims {
        axis: usize,
    },
    Squeeze {
        axes: Vec<usize>,
    },
    ConcatV2 {
        axis: usize,
    },
    /// `Slice(x)` with static `begin` and `size` (-1: to the end of that dimension).
    Slice {
        begin: Vec<usize>,
        size: Vec<i64>,
    },
    /// `GatherV2(params, indices)`: the slices of `params` along `axis` at `indices` (int32 or
    /// int64, each in `[0, params.shape[axis])`), as `tf.gather`; TF's axis input is held here.
    GatherV2 {
        axis: usize,
    },
    /// TF's `StridedSlice(input)` (`x[:, -1]`, `x[::-1]`, ...): begin, end and strides (TF's
    /// inputs) and the masks in the spec, resolved against the input's shape when run.
    StridedSlice(crate::SliceSpec),
    /// TF's `StridedSliceGrad(dy, like)`: `dy` placed where [`Op::StridedSlice`] took it from, in
    /// zeros of `like`'s shape (TF takes the shape; here the tensor whose shape is meant).
    StridedSliceGrad(crate::SliceSpec),
    /// `Tile(input)`: the input repeated `multiples[i]` times along dimension i (`tf.tile`; TF's
    /// multiples input is held here).
    Tile {
        multiples: Vec<usize>,
    },
    /// `UnsortedSegmentSum(data, segment_ids, num_segments)`: output row i sums the slices of
    /// `data` whose id is i; negative ids are dropped, ids past `num_segments` are an error.
    UnsortedSegmentSum,
    /// `SplitV(value)`: pieces of `sizes` along `axis`, one output each (`tf.split`).
    SplitV {
        sizes: Vec<usize>,
        axis: usize,
    },
    /// `Pack(values)`: N tensors of one shape stacked along a new `axis` (`tf.stack`).
    Pack {
        axis: usize,
    },
    /// `Unpack(value)`: the `num` slices along `axis`, one output each (`tf.unstack`).
    Unpack {
        num: usize,
        axis: usize,
    },
    /// Zero padding: `paddings[i] = (before, after)` for dimension i (TF's `Pad`).
    Pad {
        paddings: Vec<(usize, usize)>,
    },
    /// TF's `MirrorPad(input)`: padding that mirrors the input, without its edge (REFLECT) or
    /// with it (`symmetric`, TF's SYMMETRIC).
    MirrorPad {
        paddings: Vec<(usize, usize)>,
        symmetric: bool,
    },
    /// TF's `MirrorPadGrad(input)`: each padded position's gradient added back where it came from.
    MirrorPadGrad {
        paddings: Vec<(usize, usize)>,
        symmetric: bool,
    },
    /// TF's one-argument `Where(input)`: the int64 coordinates `[num_true, rank]` of the true
    /// (non-zero) elements, in row-major order.
    Where,
    /// TF's `Range(start, limit, delta)` over scalars known when the graph runs (`tf.range` of
    /// tensors): `start, start + delta, ...` up to `limit`, excluded.
    Range,
    /// TF's `Slice(input, begin, size)` with `begin` and `size` int vectors known when the graph
    /// runs (a size of -1: to the end).
    SliceDynamic,
    /// TF's `Reshape(tensor, shape)` with `shape` an int vector known when the graph runs (at
    /// most one -1: whatever the other dimensions leave); see [`Op::Reshape`] for a constant one.
    ReshapeDynamic,
    /// The gradient of [`Op::SliceDynamic`]: `SliceGrad(dy, like, begin)` places `dy` at `begin`
    /// in zeros of `like`'s shape (TF spells it with a run-time `Pad`).
    SliceGrad,
    /// TF's `Fill(dims, value)` with dims computed when the graph runs (an int vector of known
    /// length): the scalar `value` repeated.
    FillDims,
    OneHot {
        depth: usize,
        on_value: f64,
        off_value: f64,
        dtype: DType,
    },
    ZerosLike,
    OnesLike,
    /// The input's run-time shape as a vector of `dtype` (int32 or int64), as TF's `Shape`.
    Shape {
        dtype: DType,
    },
    /// Number of elements of the input over `axes` (all axes if `None`), as a scalar of `dtype`.
    Size {
        axes: Option<Vec<usize>>,
        dtype: DType,
    },
    /// `BroadcastTo(x, like)`: broadcasts `x` to the run-time shape of `like`. (TF takes a shape
    /// tensor; taking the tensor whose shape is wanted keeps shapes static-free here.)
    BroadcastTo,
    /// `SumToShape(grad, like)`: sums `grad` over broadcast axes down to the shape of `like`,
    /// the adjoint of `BroadcastTo` (TF spells this BroadcastGradientArgs + Sum + Reshape).
    SumToShape,

    // ---- summaries: serialized `tensorflow.Summary` protos, as string scalars --------------
    /// TF's `ScalarSummary(tags, values)`: the scalar `values` under `tags` (TF's input, held
    /// here).
    ScalarSummary {
        tags: String,
    },
    /// TF's `HistogramSummary(tag, values)`: the values over TF's default buckets.
    HistogramSummary {
        tag: String,
    },
    /// TF's `ImageSummary(tag, tensor)`: the first `max_images` of a `[batch, h, w, c]` tensor as
    /// PNGs.
    ImageSummary {
        tag: String,
        max_images: usize,
    },
    /// TF's `MergeSummary(inputs)`: one summary of all the inputs' values.
    MergeSummary,

    // ---- control flow (function graphs; see `ops::control_flow`) --------------------------
    /// TF's `StatelessWhile(input)`: inputs are the loop variables, then `cond`'s and `body`'s
    /// captured tensors; `cond` takes the variables and its captures and returns a bool
    /// scalar, `body` takes the variables and its captures and returns the next variables.
    /// Outputs the final variables.
    While {
        cond: crate::Func,
        body: crate::Func,
        maximum_iterations: Option<u64>,
    },
    /// TF's `StatelessIf(cond, input)`: runs `then_branch` or `else_branch` (both taking all of
    /// `input`) as the bool scalar `cond` says.
    If {
        then_branch: crate::Func,
        else_branch: crate::Func,
    },
    /// TF1's `Switch(data, pred)` (control flow v1, as `tf.cond` writes it in graph mode):
    /// `data` goes out on `output_true` when the bool scalar `pred` is true, else on
    /// `output_false`; the other output is dead, and so is every op reading a dead tensor or
    /// ordered after a dead node, until a [`Op::Merge`].
    Switch,
    /// TF1's `Merge(inputs)`: the one live input, and its index (`value_index`, int32).
    Merge,
    /// The gradient of [`Op::While`]: inputs are the `While`'s inputs, then the gradients of its
    /// outputs; outputs the gradients of the initial variables and of `body`'s captures. It
    /// reruns the loop keeping each iteration's variables, then runs `grad` (the body's
    /// gradient: variables, captures, gradients of the next variables → gradients of the
    /// variables and captures) from the last iteration to the first.
    WhileGrad {
        cond: crate::Func,
        body: crate::Func,
        grad: crate::Func,
        maximum_iterations: Option<u64>,
    },
}

impl Op {
    /// TensorFlow's op type name (`MatMul`, `AddV2`, `SparseSoftmaxCrossEntropyWithLogits`...).
    pub fn type_name(&self) -> &'static str {
        self.def().name
    }

    /// Ops with effects or internal state: never pruned as duplicates, scheduled after readers.
    pub fn is_stateful(&self) -> bool {
        self.def().stateful
    }

    /// Inputs taken by reference: the variable itself, not its value (TF's `Ref(T)` inputs).
    pub fn ref_inputs(&self) -> Vec<usize> {
        self.def().ref_inputs().collect()
    }
}
