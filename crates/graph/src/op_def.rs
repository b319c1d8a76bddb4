//! What each op is, in one place, as TF's `REGISTER_OP(..).Input(..).Output(..).Attr(..)`
//! says it: its TF type name, its inputs (by value, by reference, or TF's variadic `N * T`), its
//! outputs, whether it is stateful, and its attributes by TF's names and types.
//!
//! [`Op::def`] and [`Op::attrs`] are exhaustive matches: a new [`Op`] variant does not compile
//! until it has both. Everything generic reads them instead of matching on ops: arity checks,
//! the planner's reference inputs and scheduling, TensorBoard's `GraphDef` attributes.
//! (Shape inference, gradient rules and kernels stay in their crates, one function each.)
//!
//! Where TF passes an argument as an input tensor (a reduction's axes, a reshape's shape, a
//! pad's paddings), this engine holds it as an attribute; such attributes keep TF's input name
//! (`reduction_indices`, `shape`, `paddings`), so an exporter knows what to turn into a `Const`.
//!
//! ```
//! use tensorgraph_graph::{op_def::{ArgKind, AttrValue}, ConvAttrs, Op, Padding};
//! let conv = Op::Conv2D(ConvAttrs { strides: [1, 2, 2, 1], dilations: [1; 4], padding: Padding::Same });
//! let def = conv.def();
//! assert_eq!(def.name, "Conv2D");
//! assert_eq!(def.inputs.iter().map(|a| a.name).collect::<Vec<_>>(), ["input", "filter"]);
//! assert_eq!(conv.attrs()[0], ("strides", AttrValue::Ints(vec![1, 2, 2, 1])));
//! let add_n = Op::AddN.def();
//! assert_eq!(add_n.inputs[0].kind, ArgKind::Variadic);
//! ```

use crate::op::{ApplyOp, ConvAttrs, Op, PoolAttrs, UnaryOp};
use crate::{DType, Shape, Value};

/// How an input takes its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// One tensor's value.
    Value,
    /// A variable itself, not its value (TF's `Ref(T)`): the op reads or updates it in place.
    Ref,
    /// One or more tensors of one dtype (TF's `N * T`) as an op's single input, or any number
    /// of tensors as its last (TF's `input: Tin` of a functional op).
    Variadic,
}

/// One input of an op: TF's name for it and how it takes its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
}

/// An op's definition (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpDef {
    /// TF's op type name (`MatMul`, `AddV2`, `SparseSoftmaxCrossEntropyWithLogits`...).
    pub name: &'static str,
    pub inputs: &'static [Arg],
    /// TF's names of the outputs, in order.
    pub outputs: &'static [&'static str],
    /// Has effects or internal state (variables, updates, random draws): never folded or
    /// deduplicated, scheduled after the stateless readers of the same step.
    pub stateful: bool,
    /// Gradients flow through it (autodiff has a rule giving some input a gradient). False for
    /// sources, stateful ops, and piecewise-constant or integer-valued ops (comparisons,
    /// `ArgMax`, `Floor`...). `tests/gradients.rs` fails for a differentiable op without a
    /// finite-difference check.
    pub differentiable: bool,
}

impl OpDef {
    /// Whether `n` inputs fit the definition (a variadic input takes at least one tensor).
    pub fn accepts(&self, n: usize) -> bool {
        match self.inputs {
            [Arg { kind: ArgKind::Variadic, .. }] => n >= 1,
            // A variadic last input after fixed ones may take no tensor (`If`'s `input`).
            [fixed @ .., Arg { kind: ArgKind::Variadic, .. }] => n >= fixed.len(),
            inputs => n == inputs.len(),
        }
    }

    /// Positions of the inputs taken by reference.
    pub fn ref_inputs(&self) -> impl Iterator<Item = usize> + '_ {
        self.inputs.iter().enumerate().filter(|(_, a)| a.kind == ArgKind::Ref).map(|(i, _)| i)
    }
}

/// An attribute's value, typed as TF's `AttrValue`.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Type(DType),
    Shape(Shape),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Ints(Vec<i64>),
    /// A list of dtypes (TF's `list(type)`, a functional op's `T`, `Tin`, `Tout`).
    Types(Vec<DType>),
    Tensor(Value),
}

/// A string scalar (a summary's tag, which TF takes as an input).
fn string(s: &str) -> Value {
    Value::from(ndarray::arr0(s.as_bytes().to_vec()))
}

const fn v(name: &'static str) -> Arg {
    Arg { name, kind: ArgKind::Value }
}

const fn r(name: &'static str) -> Arg {
    Arg { name, kind: ArgKind::Ref }
}

const fn def(name: &'static str, inputs: &'static [Arg], outputs: &'static [&'static str]) -> OpDef {
    OpDef { name, inputs, outputs, stateful: false, differentiable: true }
}

const fn stateful(name: &'static str, inputs: &'static [Arg], outputs: &'static [&'static str]) -> OpDef {
    OpDef { name, inputs, outputs, stateful: true, differentiable: false }
}

/// A stateless op no gradient flows through (here).
const fn no_grad(name: &'static str, inputs: &'static [Arg], outputs: &'static [&'static str]) -> OpDef {
    OpDef { name, inputs, outputs, stateful: false, differentiable: false }
}

const X: &[Arg] = &[v("x")];
const XY: &[Arg] = &[v("x"), v("y")];
const Y: &[&str] = &["y"];
const Z: &[&str] = &["z"];
const OUTPUT: &[&str] = &["output"];
const SUMMARY: &[&str] = &["summary"];
const CONV_BACKPROP: &[Arg] = &[v("input"), v("filter"), v("out_backprop")];
const POOL_GRAD: &[Arg] = &[v("orig_input"), v("grad")];
const LSTM_BLOCK: &[Arg] = &[v("x"), v("cs_prev"), v("h_prev"), v("w"), v("wci"), v("wcf"), v("wco"), v("b")];

fn ints(v: &[usize]) -> AttrValue {
    AttrValue::Ints(v.iter().map(|&x| x as i64).collect())
}

impl ConvAttrs {
    /// `strides`, `dilations`, `padding` and `data_format` (always NHWC here), as TF's.
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        vec![
            ("strides", ints(&self.strides)),
            ("dilations", ints(&self.dilations)),
            ("padding", AttrValue::Str(self.padding.name())),
            ("data_format", AttrValue::Str("NHWC")),
        ]
    }
}

impl PoolAttrs {
    /// `ksize`, `strides`, `padding` and `data_format` (always NHWC here), as TF's.
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        vec![
            ("ksize", ints(&self.ksize)),
            ("strides", ints(&self.strides)),
            ("padding", AttrValue::Str(self.padding.name())),
            ("data_format", AttrValue::Str("NHWC")),
        ]
    }
}

impl ApplyOp {
    /// The definition of this update (TF's `Apply*` op).
    pub fn def(self) -> OpDef {
        const GD: &[Arg] = &[r("var"), v("alpha"), v("delta")];
        const MOMENTUM: &[Arg] = &[r("var"), r("accum"), v("lr"), v("grad"), v("momentum")];
        const ADAGRAD: &[Arg] = &[r("var"), r("accum"), v("lr"), v("grad")];
        const RMSPROP: &[Arg] =
            &[r("var"), r("ms"), r("mom"), v("lr"), v("rho"), v("momentum"), v("epsilon"), v("grad")];
        const CENTERED: &[Arg] =
            &[r("var"), r("mg"), r("ms"), r("mom"), v("lr"), v("rho"), v("momentum"), v("epsilon"), v("grad")];
        const ADAM: &[Arg] = &[
            r("var"),
            r("m"),
            r("v"),
            v("beta1_power"),
            v("beta2_power"),
            v("lr"),
            v("beta1"),
            v("beta2"),
            v("epsilon"),
            v("grad"),
        ];
        // TF's Apply ops output the updated variable; here the update is an effect only.
        match self {
            ApplyOp::GradientDescent => stateful("ApplyGradientDescent", GD, &[]),
            ApplyOp::Momentum { .. } => stateful("ApplyMomentum", MOMENTUM, &[]),
            ApplyOp::Adagrad => stateful("ApplyAdagrad", ADAGRAD, &[]),
            ApplyOp::RMSProp => stateful("ApplyRMSProp", RMSPROP, &[]),
            ApplyOp::CenteredRMSProp => stateful("ApplyCenteredRMSProp", CENTERED, &[]),
            ApplyOp::Adam => stateful("ApplyAdam", ADAM, &[]),
        }
    }
}

impl Op {
    /// The op's definition: TF's type name, inputs, outputs, statefulness.
    pub fn def(&self) -> OpDef {
        match self {
            Op::Placeholder { .. } => no_grad("Placeholder", &[], OUTPUT),
            Op::Const { .. } => no_grad("Const", &[], OUTPUT),
            Op::PlaceholderWithDefault => no_grad("PlaceholderWithDefault", const { &[v("input")] }, OUTPUT),
            Op::Fill { .. } => no_grad("Fill", &[], OUTPUT),
            Op::FillDims => no_grad("Fill", const { &[v("dims"), v("value")] }, OUTPUT),
            Op::MirrorPad { .. } => def("MirrorPad", const { &[v("input")] }, OUTPUT),
            Op::MirrorPadGrad { .. } => def("MirrorPadGrad", const { &[v("input")] }, OUTPUT),
            Op::Range => no_grad("Range", const { &[v("start"), v("limit"), v("delta")] }, OUTPUT),
            Op::SliceDynamic => def("Slice", const { &[v("input"), v("begin"), v("size")] }, OUTPUT),
            Op::ReshapeDynamic => def("Reshape", const { &[v("tensor"), v("shape")] }, OUTPUT),
            Op::SliceGrad => def("SliceGrad", const { &[v("dy"), v("like"), v("begin")] }, OUTPUT),
            Op::Where => no_grad("Where", const { &[v("input")] }, const { &["index"] }),
            Op::RandomUniform { .. } => stateful("RandomUniform", &[], OUTPUT),
            Op::RandomUniformLike { .. } => stateful("RandomUniform", const { &[v("like")] }, OUTPUT),
            Op::RandomStandardNormal { .. } => stateful("RandomStandardNormal", &[], OUTPUT),
            Op::TruncatedNormal { .. } => stateful("TruncatedNormal", &[], OUTPUT),
            Op::VariableV2 { .. } => stateful("VariableV2", &[], &["ref"]),
            Op::Assign => stateful("Assign", const { &[r("ref"), v("value")] }, &["output_ref"]),
            Op::AssignAdd => stateful("AssignAdd", const { &[r("ref"), v("value")] }, &["output_ref"]),
            Op::AssignSub => stateful("AssignSub", const { &[r("ref"), v("value")] }, &["output_ref"]),
            Op::Apply(a) => a.def(),
            Op::NoOp => no_grad("NoOp", &[], &[]),
            Op::Identity => def("Identity", const { &[v("input")] }, OUTPUT),
            Op::StopGradient => no_grad("StopGradient", const { &[v("input")] }, OUTPUT),
            Op::MatMul { .. } => def("MatMul", const { &[v("a"), v("b")] }, &["product"]),
            Op::Unary(u @ (UnaryOp::Sign | UnaryOp::Floor | UnaryOp::LogicalNot)) => no_grad(u.type_name(), X, Y),
            Op::Unary(u @ (UnaryOp::Relu | UnaryOp::Elu | UnaryOp::Selu | UnaryOp::Softplus | UnaryOp::Softsign)) => {
                def(u.type_name(), const { &[v("features")] }, const { &["activations"] })
            }
            Op::Unary(u) => def(u.type_name(), X, Y),
            Op::Binary(b) if b.is_comparison() || b.is_logical() => no_grad(b.type_name(), XY, Z),
            Op::Binary(b) => match b.type_name() {
                name @ "ReluGrad" => def(name, const { &[v("gradients"), v("features")] }, &["backprops"]),
                name @ ("SigmoidGrad" | "TanhGrad") => def(name, const { &[v("y"), v("dy")] }, Z),
                name => def(name, XY, Z),
            },
            Op::AddN => def("AddN", &[Arg { name: "inputs", kind: ArgKind::Variadic }], &["sum"]),
            Op::Select => def("SelectV2", const { &[v("condition"), v("t"), v("e")] }, OUTPUT),
            Op::BiasAdd => def("BiasAdd", const { &[v("value"), v("bias")] }, OUTPUT),
            Op::Reduce { op, .. } => def(op.type_name(), const { &[v("input")] }, OUTPUT),
            Op::ArgMax { .. } => no_grad("ArgMax", const { &[v("input")] }, OUTPUT),
            Op::ArgMin { .. } => no_grad("ArgMin", const { &[v("input")] }, OUTPUT),
            Op::Cast { .. } => def("Cast", X, Y),
            Op::LeakyRelu { .. } => def("LeakyRelu", const { &[v("features")] }, &["activations"]),
            Op::Softmax => def("Softmax", const { &[v("logits")] }, &["softmax"]),
            Op::LogSoftmax => def("LogSoftmax", const { &[v("logits")] }, &["logsoftmax"]),
            Op::SparseSoftmaxCrossEntropyWithLogits => def(
                "SparseSoftmaxCrossEntropyWithLogits",
                const { &[v("features"), v("labels")] },
                &["loss", "backprop"],
            ),
            Op::FusedBatchNorm { .. } => def(
                "FusedBatchNorm",
                const { &[v("x"), v("scale"), v("offset"), v("mean"), v("variance"), v("is_training")] },
                &["y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"],
            ),
            // No second-order batch norm here (TF has FusedBatchNormGradGrad).
            Op::FusedBatchNormGrad => no_grad(
                "FusedBatchNormGrad",
                const {
                    &[v("y_backprop"), v("x"), v("scale"), v("reserve_space_1"), v("reserve_space_2"), v("is_training")]
                },
                &["x_backprop", "scale_backprop", "offset_backprop"],
            ),
            Op::InTopKV2 { .. } => no_grad("InTopKV2", const { &[v("predictions"), v("targets")] }, &["precision"]),
            Op::LSTMBlockCell { .. } => def("LSTMBlockCell", LSTM_BLOCK, &["i", "cs", "f", "o", "ci", "co", "h"]),
            Op::LSTMBlockCellGrad { .. } => no_grad(
                "LSTMBlockCellGrad",
                const {
                    &[
                        v("x"),
                        v("cs_prev"),
                        v("h_prev"),
                        v("w"),
                        v("wci"),
                        v("wcf"),
                        v("wco"),
                        v("b"),
                        v("i"),
                        v("cs"),
                        v("f"),
                        v("o"),
                        v("ci"),
                        v("co"),
                        v("cs_grad"),
                        v("h_grad"),
                    ]
                },
                &["cs_prev_grad", "dicfo", "wci_grad", "wcf_grad", "wco_grad"],
            ),
            Op::Conv2D(_) => def("Conv2D", const { &[v("input"), v("filter")] }, OUTPUT),
            Op::Conv2DBackpropInput(_) => def("Conv2DBackpropInput", CONV_BACKPROP, OUTPUT),
            Op::Conv2DBackpropFilter(_) => def("Conv2DBackpropFilter", CONV_BACKPROP, OUTPUT),
            Op::DepthwiseConv2dNative(_) => def("DepthwiseConv2dNative", const { &[v("input"), v("filter")] }, OUTPUT),
            // No second-order rules (yet): gradients do not flow through the backprop ops.
            Op::DepthwiseConv2dNativeBackpropInput(_) => {
                no_grad("DepthwiseConv2dNativeBackpropInput", CONV_BACKPROP, OUTPUT)
            }
            Op::DepthwiseConv2dNativeBackpropFilter(_) => {
                no_grad("DepthwiseConv2dNativeBackpropFilter", CONV_BACKPROP, OUTPUT)
            }
            Op::MaxPool(_) => def("MaxPool", const { &[v("input")] }, OUTPUT),
            Op::MaxPoolGrad(_) => def("MaxPoolGrad", POOL_GRAD, OUTPUT),
            Op::MaxPoolGradGrad(_) => def("MaxPoolGradGrad", POOL_GRAD, OUTPUT),
            Op::AvgPool(_) => def("AvgPool", const { &[v("value")] }, OUTPUT),
            Op::AvgPoolGrad(_) => def("AvgPoolGrad", POOL_GRAD, OUTPUT),
            Op::Reshape { .. } => def("Reshape", const { &[v("tensor")] }, OUTPUT),
            Op::Transpose { .. } => def("Transpose", X, Y),
            Op::ExpandDims { .. } => def("ExpandDims", const { &[v("input")] }, OUTPUT),
            Op::Squeeze { .. } => def("Squeeze", const { &[v("input")] }, OUTPUT),
            Op::ConcatV2 { .. } => def("ConcatV2", &[Arg { name: "values", kind: ArgKind::Variadic }], OUTPUT),
            Op::Slice { .. } => def("Slice", const { &[v("input")] }, OUTPUT),
            Op::GatherV2 { .. } => def("GatherV2", const { &[v("params"), v("indices")] }, OUTPUT),
            Op::Tile { .. } => def("Tile", const { &[v("input")] }, OUTPUT),
            Op::StridedSlice(_) => def("StridedSlice", const { &[v("input")] }, OUTPUT),
            Op::StridedSliceGrad(_) => def("StridedSliceGrad", const { &[v("dy"), v("like")] }, OUTPUT),
            Op::UnsortedSegmentSum => {
                def("UnsortedSegmentSum", const { &[v("data"), v("segment_ids"), v("num_segments")] }, OUTPUT)
            }
            Op::SplitV { .. } => def("SplitV", const { &[v("value")] }, OUTPUT),
            Op::Pack { .. } => def("Pack", &[Arg { name: "values", kind: ArgKind::Variadic }], OUTPUT),
            Op::Unpack { .. } => def("Unpack", const { &[v("value")] }, OUTPUT),
            Op::Pad { .. } => def("Pad", const { &[v("input")] }, OUTPUT),
            Op::OneHot { .. } => no_grad("OneHot", const { &[v("indices")] }, OUTPUT),
            Op::ZerosLike => no_grad("ZerosLike", X, Y),
            Op::OnesLike => no_grad("OnesLike", X, Y),
            Op::Size { .. } => no_grad("Size", const { &[v("input")] }, OUTPUT),
            Op::Shape { .. } => no_grad("Shape", const { &[v("input")] }, OUTPUT),
            Op::BroadcastTo => def("BroadcastTo", const { &[v("input"), v("like")] }, OUTPUT),
            Op::SumToShape => def("SumToShape", const { &[v("grad"), v("like")] }, OUTPUT),
            Op::Cumsum { .. } => def("Cumsum", const { &[v("x")] }, const { &["out"] }),
            Op::Cumprod { .. } => def("Cumprod", const { &[v("x")] }, const { &["out"] }),
            Op::TopKV2 { .. } => def("TopKV2", const { &[v("input")] }, const { &["values", "indices"] }),
            Op::BatchMatMulV2 { .. } => def("BatchMatMulV2", XY, const { &["output"] }),
            Op::ScalarSummary { .. } => no_grad("ScalarSummary", const { &[v("values")] }, SUMMARY),
            Op::HistogramSummary { .. } => no_grad("HistogramSummary", const { &[v("values")] }, SUMMARY),
            Op::ImageSummary { .. } => no_grad("ImageSummary", const { &[v("tensor")] }, SUMMARY),
            Op::MergeSummary => no_grad("MergeSummary", &[Arg { name: "inputs", kind: ArgKind::Variadic }], SUMMARY),
            Op::While { .. } => {
                def("StatelessWhile", const { &[Arg { name: "input", kind: ArgKind::Variadic }] }, OUTPUT)
            }
            Op::If { .. } => {
                def("StatelessIf", const { &[v("cond"), Arg { name: "input", kind: ArgKind::Variadic }] }, OUTPUT)
            }
            Op::Switch => {
                no_grad("Switch", const { &[v("data"), v("pred")] }, const { &["output_false", "output_true"] })
            }
            Op::Merge => no_grad(
                "Merge",
                const { &[Arg { name: "inputs", kind: ArgKind::Variadic }] },
                const { &["output", "value_index"] },
            ),
            Op::WhileGrad { .. } => {
                no_grad("WhileGrad", const { &[Arg { name: "input", kind: ArgKind::Variadic }] }, OUTPUT)
            }
        }
    }

    /// The op's attributes by TF's names (see the module documentation for those TF passes as
    /// inputs), in a fixed order. The dtype attribute `T` that TF derives from the inputs is
    /// not listed: it is the dtype of the node's first output or input.
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        use AttrValue::*;
        let seeds = |seed: u64, seed2: u64| [("seed", Int(seed as i64)), ("seed2", Int(seed2 as i64))];
        match self {
            Op::Placeholder { dtype, shape } => vec![("dtype", Type(*dtype)), ("shape", Shape(shape.clone()))],
            Op::Const { value } => vec![("dtype", Type(value.dtype())), ("value", Tensor(value.clone()))],
            Op::VariableV2 { dtype, shape } => {
                vec![("dtype", Type(*dtype)), ("shape", Shape(crate::Shape::known(shape)))]
            }
            Op::Fill { dtype, shape, value } => {
                vec![("dtype", Type(*dtype)), ("dims", ints(shape)), ("value", Float(*value))]
            }
            Op::RandomUniform { dtype, shape, minval, maxval, seed, seed2 } => {
                let mut a = vec![("dtype", Type(*dtype)), ("shape", ints(shape))];
                a.extend(seeds(*seed, *seed2));
                a.extend([("minval", Float(*minval)), ("maxval", Float(*maxval))]);
                a
            }
            Op::RandomUniformLike { dtype, minval, maxval, seed, seed2 } => {
                let mut a = vec![("dtype", Type(*dtype))];
                a.extend(seeds(*seed, *seed2));
                a.extend([("minval", Float(*minval)), ("maxval", Float(*maxval))]);
                a
            }
            Op::RandomStandardNormal { dtype, shape, mean, stddev, seed, seed2 }
            | Op::TruncatedNormal { dtype, shape, mean, stddev, seed, seed2 } => {
                let mut a = vec![("dtype", Type(*dtype)), ("shape", ints(shape))];
                a.extend(seeds(*seed, *seed2));
                a.extend([("mean", Float(*mean)), ("stddev", Float(*stddev))]);
                a
            }
            Op::Apply(ApplyOp::Momentum { use_nesterov }) => vec![("use_nesterov", Bool(*use_nesterov))],
            Op::MatMul { transpose_a, transpose_b } => {
                vec![("transpose_a", Bool(*transpose_a)), ("transpose_b", Bool(*transpose_b))]
            }
            Op::Reduce { axes, keep_dims, .. } => {
                vec![("reduction_indices", ints(axes)), ("keep_dims", Bool(*keep_dims))]
            }
            Op::ArgMax { axis, output_type } | Op::ArgMin { axis, output_type } => {
                vec![("dimension", Int(*axis as i64)), ("output_type", Type(*output_type))]
            }
            Op::Cast { to } => vec![("DstT", Type(*to))],
            Op::LeakyRelu { alpha } => vec![("alpha", Float(*alpha))],
            Op::FusedBatchNorm { epsilon } => vec![("epsilon", Float(*epsilon)), ("data_format", Str("NHWC"))],
            Op::InTopKV2 { k } => vec![("k", Int(*k as i64))],
            Op::LSTMBlockCell { forget_bias, cell_clip, use_peephole } => vec![
                ("forget_bias", Float(*forget_bias)),
                ("cell_clip", Float(*cell_clip)),
                ("use_peephole", Bool(*use_peephole)),
            ],
            Op::LSTMBlockCellGrad { use_peephole } => vec![("use_peephole", Bool(*use_peephole))],
            Op::Conv2D(a)
            | Op::Conv2DBackpropInput(a)
            | Op::Conv2DBackpropFilter(a)
            | Op::DepthwiseConv2dNative(a)
            | Op::DepthwiseConv2dNativeBackpropInput(a)
            | Op::DepthwiseConv2dNativeBackpropFilter(a) => a.attrs(),
            Op::MaxPool(a) | Op::MaxPoolGrad(a) | Op::MaxPoolGradGrad(a) | Op::AvgPool(a) | Op::AvgPoolGrad(a) => {
                a.attrs()
            }
            Op::Reshape { shape } => vec![("shape", Ints(shape.clone()))],
            Op::Transpose { perm } => vec![("perm", ints(perm))],
            Op::ExpandDims { axis } => vec![("dim", Int(*axis as i64))],
            Op::Squeeze { axes } => vec![("squeeze_dims", ints(axes))],
            Op::ConcatV2 { axis } => vec![("axis", Int(*axis as i64))],
            Op::Slice { begin, size } => vec![("begin", ints(begin)), ("size", Ints(size.clone()))],
            Op::GatherV2 { axis } => vec![("axis", Int(*axis as i64))],
            Op::Tile { multiples } => vec![("multiples", ints(multiples))],
            Op::StridedSlice(s) | Op::StridedSliceGrad(s) => vec![
                ("begin", Ints(s.begin.clone())),
                ("end", Ints(s.end.clone())),
                ("strides", Ints(s.strides.clone())),
                ("begin_mask", Int(s.begin_mask)),
                ("end_mask", Int(s.end_mask)),
                ("ellipsis_mask", Int(s.ellipsis_mask)),
                ("new_axis_mask", Int(s.new_axis_mask)),
                ("shrink_axis_mask", Int(s.shrink_axis_mask)),
            ],
            Op::SplitV { sizes, axis } => {
                vec![
                    ("size_splits", ints(sizes)),
                    ("split_dim", Int(*axis as i64)),
                    ("num_split", Int(sizes.len() as i64)),
                ]
            }
            Op::Pack { axis } => vec![("axis", Int(*axis as i64))],
            Op::Unpack { num, axis } => vec![("num", Int(*num as i64)), ("axis", Int(*axis as i64))],
            Op::Pad { paddings } => {
                vec![("paddings", AttrValue::Ints(paddings.iter().flat_map(|&(a, b)| [a as i64, b as i64]).collect()))]
            }
            Op::MirrorPad { paddings, symmetric } | Op::MirrorPadGrad { paddings, symmetric } => vec![
                ("paddings", AttrValue::Ints(paddings.iter().flat_map(|&(a, b)| [a as i64, b as i64]).collect())),
                ("mode", Str(if *symmetric { "SYMMETRIC" } else { "REFLECT" })),
            ],
            Op::Where | Op::FillDims | Op::Range | Op::SliceDynamic | Op::SliceGrad | Op::ReshapeDynamic => vec![],
            Op::OneHot { depth, on_value, off_value, dtype } => vec![
                ("depth", Int(*depth as i64)),
                ("on_value", Float(*on_value)),
                ("off_value", Float(*off_value)),
                ("T", Type(*dtype)),
            ],
            Op::Shape { dtype } => vec![("out_type", Type(*dtype))],
            Op::Size { axes, dtype } => {
                let mut a = vec![("out_type", Type(*dtype))];
                a.extend(axes.as_ref().map(|axes| ("axes", ints(axes))));
                a
            }
            Op::PlaceholderWithDefault
            | Op::Assign
            | Op::AssignAdd
            | Op::AssignSub
            | Op::Apply(
                ApplyOp::GradientDescent
                | ApplyOp::Adagrad
                | ApplyOp::RMSProp
                | ApplyOp::CenteredRMSProp
                | ApplyOp::Adam,
            )
            | Op::NoOp
            | Op::UnsortedSegmentSum
            | Op::Identity
            | Op::StopGradient
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::AddN
            | Op::Select
            | Op::BiasAdd
            | Op::Softmax
            | Op::LogSoftmax
            | Op::SparseSoftmaxCrossEntropyWithLogits
            | Op::FusedBatchNormGrad
            | Op::ZerosLike
            | Op::OnesLike
            | Op::BroadcastTo
            | Op::SumToShape => vec![],
            Op::While { body, .. } => vec![("T", Types(body.output_specs().iter().map(|s| s.dtype).collect()))],
            Op::If { then_branch, .. } => vec![
                ("Tcond", Type(DType::Bool)),
                ("Tin", Types(then_branch.input_specs().iter().map(|s| s.dtype).collect())),
                ("Tout", Types(then_branch.output_specs().iter().map(|s| s.dtype).collect())),
            ],
            Op::WhileGrad { .. } | Op::MergeSummary | Op::Switch | Op::Merge => vec![],
            Op::Cumsum { axis, exclusive, reverse } | Op::Cumprod { axis, exclusive, reverse } => {
                vec![("axis", Int(*axis as i64)), ("exclusive", Bool(*exclusive)), ("reverse", Bool(*reverse))]
            }
            Op::TopKV2 { k, sorted } => vec![("k", Int(*k as i64)), ("sorted", Bool(*sorted))],
            Op::BatchMatMulV2 { adj_x, adj_y } => vec![("adj_x", Bool(*adj_x)), ("adj_y", Bool(*adj_y))],
            Op::ScalarSummary { tags } => vec![("tags", Tensor(string(tags)))],
            Op::HistogramSummary { tag } => vec![("tag", Tensor(string(tag)))],
            Op::ImageSummary { tag, max_images } => {
                vec![("tag", Tensor(string(tag))), ("max_images", Int(*max_images as i64))]
            }
        }
    }
}
