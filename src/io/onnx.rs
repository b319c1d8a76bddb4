//! Inference graphs as ONNX models (opset 13), for ONNX Runtime, TensorRT and the rest of the
//! ONNX ecosystem: the graph pruned to the outputs, variables and constants as initializers,
//! placeholders as the model's inputs. ONNX's convolutions and pooling are NCHW where ours are
//! NHWC: each is wrapped in transposes and its filter stored as OIHW. Batch norm is written in
//! inference mode (moving averages). An op with no ONNX form here is an error naming it.

use crate::proto::onnx::{
    AttributeProto, DimValue, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use crate::{DType, Error, Graph, Op, Result, Session, Tensor, Value};
use std::collections::{HashMap, HashSet};
use tensorgraph_graph::{BinaryOp, Endpoint, GraphData, Node, NodeIndex, Padding, ReduceOp, UnaryOp};

/// The ONNX opset the models target.
pub const OPSET: i64 = 13;
/// ONNX IR version 7 (the one opset 13 came with).
const IR_VERSION: i64 = 7;

fn elem_type(d: DType) -> i32 {
    match d {
        DType::F32 => 1,
        DType::I32 => 6,
        DType::I64 => 7,
        DType::Bool => 9,
        DType::F64 => 11,
        DType::String => 8,
    }
}

fn tensor(name: String, v: &Value) -> TensorProto {
    let mut raw = Vec::new();
    crate::proto::append_le_bytes(v, &mut raw);
    TensorProto {
        dims: v.shape().iter().map(|&d| d as i64).collect(),
        data_type: elem_type(v.dtype()),
        name,
        raw_data: raw,
    }
}

fn ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.into_iter().collect(), r#type: 7, ..Default::default() }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: 2, ..Default::default() }
}

fn float(name: &str, f: f64) -> AttributeProto {
    AttributeProto { name: name.into(), f: f as f32, r#type: 1, ..Default::default() }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: s.as_bytes().to_vec(), r#type: 3, ..Default::default() }
}

fn value_info(name: String, dtype: DType, shape: &crate::Shape) -> ValueInfoProto {
    let dim = shape
        .dims()
        .iter()
        .enumerate()
        .map(|(i, d)| Dimension {
            value: Some(match d {
                Some(n) => DimValue::DimValue(*n as i64),
                None if i == 0 => DimValue::DimParam("batch".into()),
                None => DimValue::DimParam(format!("{name}_dim{i}")),
            }),
        })
        .collect();
    let tensor_type = TensorTypeProto { elem_type: elem_type(dtype), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name, r#type: Some(TypeProto { tensor_type: Some(tensor_type) }) }
}

/// Builds the ONNX graph node by node.
struct Writer<'a> {
    d: &'a GraphData,
    values: &'a HashMap<String, Value>,
    graph: GraphProto,
    /// Names of the initializers written (a constant read by several nodes is written once).
    written: HashSet<String>,
}

impl Writer<'_> {
    /// The ONNX value name of our tensor.
    fn name(&self, e: Endpoint) -> String {
        format!("{}:{}", self.d.node(e.node).name, e.slot)
    }

    fn node(&mut self, op: &str, name: String, inputs: Vec<String>, outputs: Vec<String>, attrs: Vec<AttributeProto>) {
        self.graph.node.push(NodeProto { input: inputs, output: outputs, name, op_type: op.into(), attribute: attrs });
    }

    fn initializer(&mut self, name: String, v: &Value) -> String {
        if self.written.insert(name.clone()) {
            self.graph.initializer.push(tensor(name.clone(), v));
        }
        name
    }

    fn int64s(&mut self, name: String, v: &[i64]) -> String {
        let value = Value::from(ndarray::Array1::from(v.to_vec()).into_dyn());
        self.initializer(name, &value)
    }

    /// The constant value behind `e`, when it is a `Const` or (through its read) a variable.
    fn constant(&self, e: Endpoint) -> Option<Value> {
        let n = self.d.node(e.node);
        match &n.op {
            Op::Const { value } => Some(value.clone()),
            Op::Identity => self.constant(*n.inputs.first()?),
            Op::VariableV2 { .. } => self.values.get(&n.name).cloned(),
            _ => None,
        }
    }

    /// `x` (NHWC) as NCHW, or an NCHW result back to NHWC.
    fn transpose(&mut self, x: String, out: String, to_nchw: bool) -> String {
        let perm = if to_nchw { [0, 3, 1, 2] } else { [0, 2, 3, 1] };
        self.node("Transpose", out.clone(), vec![x], vec![out.clone()], vec![ints("perm", perm)]);
        out
    }

    fn write(&mut self, n: &Node) -> std::result::Result<(), String> {
        let names: Vec<String> = n.inputs.iter().map(|&e| self.name(e)).collect();
        let input = |k: usize| names[k].clone();
        let out = |slot: usize| format!("{}:{slot}", n.name);
        let simple = |w: &mut Self, op: &str, attrs: Vec<AttributeProto>| {
            let ins = (0..n.inputs.len()).map(|k| w.name(n.inputs[k])).collect();
            w.node(op, n.name.clone(), ins, vec![out(0)], attrs);
        };
        match &n.op {
            Op::Placeholder { dtype, shape } => {
                self.graph.input.push(value_info(out(0), *dtype, shape));
            }
            Op::Const { value } => {
                self.initializer(out(0), value);
            }
            Op::VariableV2 { .. } => {
                let v = self.values.get(&n.name).ok_or_else(|| format!("variable {} has no value", n.name))?.clone();
                self.initializer(out(0), &v);
            }
            // Fixed at the default: an ONNX model's inputs have no defaults.
            Op::PlaceholderWithDefault | Op::Identity | Op::StopGradient => simple(self, "Identity", vec![]),
            Op::MatMul { transpose_a, transpose_b } => {
                let mut ins = vec![input(0), input(1)];
                for (k, t) in [(0, *transpose_a), (1, *transpose_b)] {
                    if t {
                        let name = format!("{}/transpose_{k}", n.name);
                        self.node(
                            "Transpose",
                            name.clone(),
                            vec![ins[k].clone()],
                            vec![name.clone()],
                            vec![ints("perm", [1, 0])],
                        );
                        ins[k] = name;
                    }
                }
                self.node("MatMul", n.name.clone(), ins, vec![out(0)], vec![]);
            }
            Op::BiasAdd => simple(self, "Add", vec![]),
            Op::AddN => simple(self, "Sum", vec![]),
            Op::Select => simple(self, "Where", vec![]),
            Op::Softmax => simple(self, "Softmax", vec![int("axis", -1)]),
            Op::LogSoftmax => simple(self, "LogSoftmax", vec![int("axis", -1)]),
            Op::LeakyRelu { alpha } => simple(self, "LeakyRelu", vec![float("alpha", *alpha)]),
            Op::Cast { to } => simple(self, "Cast", vec![int("to", elem_type(*to) as i64)]),
            Op::Unary(u) => self.unary(n, *u),
            Op::Binary(b) => self.binary(n, *b)?,
            Op::Reduce { op, axes, keep_dims } => {
                if axes.is_empty() {
                    simple(self, "Identity", vec![]);
                    return Ok(());
                }
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let keep = int("keepdims", i64::from(*keep_dims));
                let name = match op {
                    ReduceOp::Sum => {
                        // Opset 13 takes ReduceSum's axes as an input, the others' as an attribute.
                        let a = self.int64s(format!("{}/axes", n.name), &axes);
                        self.node("ReduceSum", n.name.clone(), vec![input(0), a], vec![out(0)], vec![keep]);
                        return Ok(());
                    }
                    ReduceOp::Mean => "ReduceMean",
                    ReduceOp::Max => "ReduceMax",
                    ReduceOp::Min => "ReduceMin",
                    ReduceOp::Prod => "ReduceProd",
                };
                self.node(name, n.name.clone(), vec![input(0)], vec![out(0)], vec![keep, ints("axes", axes)]);
            }
            Op::ArgMax { axis, output_type } | Op::ArgMin { axis, output_type } => {
                let attrs = vec![int("axis", *axis as i64), int("keepdims", 0)];
                let kind = n.op.type_name();
                if *output_type == DType::I64 {
                    self.node(kind, n.name.clone(), vec![input(0)], vec![out(0)], attrs);
                } else {
                    let i64_out = format!("{}/{}", n.name, kind.to_lowercase());
                    self.node(kind, i64_out.clone(), vec![input(0)], vec![i64_out.clone()], attrs);
                    self.node(
                        "Cast",
                        n.name.clone(),
                        vec![i64_out],
                        vec![out(0)],
                        vec![int("to", elem_type(*output_type) as i64)],
                    );
                }
            }
            Op::Reshape { shape } => {
                if shape.contains(&0) {
                    return Err("a reshape to a zero-sized dimension (ONNX reads 0 as 'keep')".into());
                }
                let s = self.int64s(format!("{}/shape", n.name), shape);
                self.node("Reshape", n.name.clone(), vec![input(0), s], vec![out(0)], vec![]);
            }
            Op::Transpose { perm } => simple(self, "Transpose", vec![ints("perm", perm.iter().map(|&p| p as i64))]),
            Op::ExpandDims { axis } => {
                let a = self.int64s(format!("{}/axes", n.name), &[*axis as i64]);
                self.node("Unsqueeze", n.name.clone(), vec![input(0), a], vec![out(0)], vec![]);
            }
            Op::Squeeze { axes } => {
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let a = self.int64s(format!("{}/axes", n.name), &axes);
                self.node("Squeeze", n.name.clone(), vec![input(0), a], vec![out(0)], vec![]);
            }
            Op::ConcatV2 { axis } => simple(self, "Concat", vec![int("axis", *axis as i64)]),
            Op::GatherV2 { axis } => simple(self, "Gather", vec![int("axis", *axis as i64)]),
            Op::Tile { multiples } => {
                let m: Vec<i64> = multiples.iter().map(|&m| m as i64).collect();
                let r = self.int64s(format!("{}/repeats", n.name), &m);
                self.node("Tile", n.name.clone(), vec![input(0), r], vec![out(0)], vec![]);
            }
            Op::SplitV { sizes, axis } => {
                let split: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
                let sz = self.int64s(format!("{}/split", n.name), &split);
                let outs = (0..sizes.len()).map(out).collect();
                self.node("Split", n.name.clone(), vec![input(0), sz], outs, vec![int("axis", *axis as i64)]);
            }
            Op::Conv2D(c) => {
                let x = self.transpose(input(0), format!("{}/nchw", n.name), true);
                // The filter as OIHW: transposed now when constant, by a node otherwise.
                let w = match self.constant(n.inputs[1]) {
                    Some(Value::F32(f)) => {
                        let oihw = f.permuted_axes(vec![3, 2, 0, 1]).as_standard_layout().to_owned();
                        self.initializer(format!("{}/filter_oihw", n.name), &Value::F32(oihw))
                    }
                    _ => {
                        let name = format!("{}/filter_oihw", n.name);
                        self.node(
                            "Transpose",
                            name.clone(),
                            vec![input(1)],
                            vec![name.clone()],
                            vec![ints("perm", [3, 2, 0, 1])],
                        );
                        name
                    }
                };
                let filter = self.d.spec(n.inputs[1]).shape.dims().to_vec();
                let kernel: Vec<i64> = filter.iter().take(2).map(|d| d.map_or(0, |d| d as i64)).collect();
                let y = format!("{}/conv_nchw", n.name);
                let attrs = vec![
                    ints("kernel_shape", kernel),
                    ints("strides", [c.strides[1] as i64, c.strides[2] as i64]),
                    ints("dilations", [c.dilations[1] as i64, c.dilations[2] as i64]),
                    string("auto_pad", pad(c.padding)),
                ];
                self.node("Conv", y.clone(), vec![x, w], vec![y.clone()], attrs);
                self.transpose(y, out(0), false);
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let x = self.transpose(input(0), format!("{}/nchw", n.name), true);
                let y = format!("{}/pool_nchw", n.name);
                let attrs = vec![
                    ints("kernel_shape", [p.ksize[1] as i64, p.ksize[2] as i64]),
                    ints("strides", [p.strides[1] as i64, p.strides[2] as i64]),
                    string("auto_pad", pad(p.padding)),
                ];
                let op = if matches!(n.op, Op::MaxPool(_)) { "MaxPool" } else { "AveragePool" };
                self.node(op, y.clone(), vec![x], vec![y.clone()], attrs);
                self.transpose(y, out(0), false);
            }
            // ONNX's own draws (their numbers are not ours): an inference graph computes them
            // where a run-time switch blends them away, as dropout's does.
            Op::RandomUniform { dtype, shape, minval, maxval, seed, .. } => {
                let attrs = vec![
                    int("dtype", elem_type(*dtype) as i64),
                    float("low", *minval),
                    float("high", *maxval),
                    float("seed", *seed as f64),
                    ints("shape", shape.iter().map(|&d| d as i64)),
                ];
                self.node("RandomUniform", n.name.clone(), vec![], vec![out(0)], attrs);
            }
            Op::RandomUniformLike { dtype, minval, maxval, seed, .. } => {
                let attrs = vec![
                    int("dtype", elem_type(*dtype) as i64),
                    float("low", *minval),
                    float("high", *maxval),
                    float("seed", *seed as f64),
                ];
                simple(self, "RandomUniformLike", attrs);
            }
            Op::FusedBatchNorm { epsilon } => {
                // Inference mode: the moving mean and variance (inputs 3 and 4), over channels
                // (ONNX's axis 1: a dense layer's [batch, channels] as it is, images as NCHW).
                let attrs = vec![float("epsilon", *epsilon)];
                if self.d.spec(n.inputs[0]).shape.rank() == 2 {
                    let ins = vec![input(0), input(1), input(2), input(3), input(4)];
                    self.node("BatchNormalization", n.name.clone(), ins, vec![out(0)], attrs);
                    return Ok(());
                }
                let x = self.transpose(input(0), format!("{}/nchw", n.name), true);
                let y = format!("{}/bn_nchw", n.name);
                let ins = vec![x, input(1), input(2), input(3), input(4)];
                self.node("BatchNormalization", y.clone(), ins, vec![y.clone()], attrs);
                self.transpose(y, out(0), false);
            }
            Op::Fill { dtype, shape, value } => {
                self.initializer(out(0), &Value::filled(*dtype, shape, *value));
            }
            Op::ZerosLike | Op::OnesLike => {
                // A tensor of x's run-time shape filled with one value (not x·0: NaN·0 is NaN).
                let fill = if matches!(n.op, Op::ZerosLike) { 0.0 } else { 1.0 };
                let shape = format!("{}/shape", n.name);
                self.node("Shape", shape.clone(), vec![input(0)], vec![shape.clone()], vec![]);
                let value = tensor(String::new(), &Value::filled(n.outputs[0].dtype, &[1], fill));
                let attr = AttributeProto { name: "value".into(), t: Some(value), r#type: 4, ..Default::default() };
                self.node("ConstantOfShape", n.name.clone(), vec![shape], vec![out(0)], vec![attr]);
            }
            Op::Slice { begin, size } => {
                // ONNX's ends are exclusive indices; TF's size -1 runs to the end.
                let starts: Vec<i64> = begin.iter().map(|&b| b as i64).collect();
                let ends: Vec<i64> =
                    begin.iter().zip(size).map(|(&b, &s)| if s < 0 { i64::MAX } else { b as i64 + s }).collect();
                let axes: Vec<i64> = (0..begin.len() as i64).collect();
                let (st, en, ax) = (
                    self.int64s(format!("{}/starts", n.name), &starts),
                    self.int64s(format!("{}/ends", n.name), &ends),
                    self.int64s(format!("{}/axes", n.name), &axes),
                );
                self.node("Slice", n.name.clone(), vec![input(0), st, en, ax], vec![out(0)], vec![]);
            }
            Op::Unpack { num, axis } => {
                // Equal pieces along the axis (opset 13's Split without sizes), each squeezed.
                let pieces: Vec<String> = (0..*num).map(|k| format!("{}/split:{k}", n.name)).collect();
                self.node(
                    "Split",
                    format!("{}/split", n.name),
                    vec![input(0)],
                    pieces.clone(),
                    vec![int("axis", *axis as i64)],
                );
                let a = self.int64s(format!("{}/axes", n.name), &[*axis as i64]);
                for (k, piece) in pieces.into_iter().enumerate() {
                    self.node(
                        "Squeeze",
                        format!("{}/squeeze_{k}", n.name),
                        vec![piece, a.clone()],
                        vec![out(k)],
                        vec![],
                    );
                }
            }
            Op::LSTMBlockCell { forget_bias, cell_clip, use_peephole } => {
                self.lstm_block_cell(n, &names, *forget_bias, *cell_clip, *use_peephole)
            }
            other => return Err(format!("{} has no ONNX form here yet", other.type_name())),
        }
        Ok(())
    }

    /// TF's `LSTMBlockCell` (inputs `x, cs_prev, h_prev, w, wci, wcf, wco, b`; outputs `i, cs, f,
    /// o, ci, co, h`) as ONNX's element-wise ops around one MatMul, as the kernel computes it:
    /// `[x, h]·w + b` split into `i, ci, f, o`; `cs = tanh(ci)·σ(i) + cs_prev·σ(f + forget_bias)`
    /// (clipped), `h = tanh(cs)·σ(o)`; peepholes add `cs_prev·wci`, `cs_prev·wcf`, `cs·wco`.
    fn lstm_block_cell(&mut self, n: &Node, ins: &[String], forget_bias: f64, clip: f64, peephole: bool) {
        let dtype = n.outputs[0].dtype;
        let out = |slot: usize| format!("{}:{slot}", n.name);
        let at = |what: &str| format!("{}/{what}", n.name);
        let op = |w: &mut Self, kind: &str, what: String, inputs: Vec<String>| {
            w.node(kind, what.clone(), inputs, vec![what.clone()], vec![]);
            what
        };
        let xh = at("xh");
        self.node("Concat", xh.clone(), vec![ins[0].clone(), ins[2].clone()], vec![xh.clone()], vec![int("axis", 1)]);
        let product = op(self, "MatMul", at("product"), vec![xh, ins[3].clone()]);
        let gates = op(self, "Add", at("gates"), vec![product, ins[7].clone()]);
        let parts: Vec<String> = ["i_in", "ci_in", "f_in", "o_in"].iter().map(|p| at(p)).collect();
        self.node("Split", at("split"), vec![gates], parts.clone(), vec![int("axis", 1)]);
        let (mut i, ci, mut f, mut o) = (parts[0].clone(), parts[1].clone(), parts[2].clone(), parts[3].clone());
        let cs_prev = ins[1].clone();
        if peephole {
            let wi = op(self, "Mul", at("peephole_i"), vec![cs_prev.clone(), ins[4].clone()]);
            i = op(self, "Add", at("i_peep"), vec![i, wi]);
            let wf = op(self, "Mul", at("peephole_f"), vec![cs_prev.clone(), ins[5].clone()]);
            f = op(self, "Add", at("f_peep"), vec![f, wf]);
        }
        self.node("Sigmoid", at("i"), vec![i], vec![out(0)], vec![]);
        self.node("Tanh", at("ci"), vec![ci], vec![out(4)], vec![]);
        let bias = self.initializer(at("forget_bias"), &Value::filled(dtype, &[], forget_bias));
        let f_biased = op(self, "Add", at("f_biased"), vec![f, bias]);
        self.node("Sigmoid", at("f"), vec![f_biased], vec![out(2)], vec![]);
        let kept = op(self, "Mul", at("ci_i"), vec![out(4), out(0)]);
        let carried = op(self, "Mul", at("cs_prev_f"), vec![cs_prev, out(2)]);
        if clip > 0.0 {
            let cs = op(self, "Add", at("cs_unclipped"), vec![kept, carried]);
            let lo = self.initializer(at("clip_min"), &Value::filled(dtype, &[], -clip));
            let hi = self.initializer(at("clip_max"), &Value::filled(dtype, &[], clip));
            self.node("Clip", at("cs"), vec![cs, lo, hi], vec![out(1)], vec![]);
        } else {
            self.node("Add", at("cs"), vec![kept, carried], vec![out(1)], vec![]);
        }
        if peephole {
            let wo = op(self, "Mul", at("peephole_o"), vec![out(1), ins[6].clone()]);
            o = op(self, "Add", at("o_peep"), vec![o, wo]);
        }
        self.node("Sigmoid", at("o"), vec![o], vec![out(3)], vec![]);
        self.node("Tanh", at("co"), vec![out(1)], vec![out(5)], vec![]);
        self.node("Mul", at("h"), vec![out(5), out(3)], vec![out(6)], vec![]);
    }

    fn unary(&mut self, n: &Node, u: UnaryOp) {
        let x = self.name(n.inputs[0]);
        let out = format!("{}:0", n.name);
        let dtype = n.outputs[0].dtype;
        let one = || Value::filled(dtype, &[], 1.0);
        let op = match u {
            // ONNX spells these as TF does.
            UnaryOp::Relu
            | UnaryOp::Sigmoid
            | UnaryOp::Tanh
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Neg
            | UnaryOp::Sqrt
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Reciprocal
            | UnaryOp::Floor
            | UnaryOp::Softplus
            | UnaryOp::Erf
            | UnaryOp::Softsign => u.type_name(),
            UnaryOp::LogicalNot => "Not",
            UnaryOp::Elu => {
                return self.node("Elu", n.name.clone(), vec![x], vec![out], vec![float("alpha", 1.0)]);
            }
            UnaryOp::Selu => {
                let attrs = vec![float("alpha", UnaryOp::SELU_ALPHA), float("gamma", UnaryOp::SELU_SCALE)];
                return self.node("Selu", n.name.clone(), vec![x], vec![out], attrs);
            }
            UnaryOp::Square => return self.node("Mul", n.name.clone(), vec![x.clone(), x], vec![out], vec![]),
            UnaryOp::Rsqrt => {
                let s = format!("{}/sqrt", n.name);
                self.node("Sqrt", s.clone(), vec![x], vec![s.clone()], vec![]);
                return self.node("Reciprocal", n.name.clone(), vec![s], vec![out], vec![]);
            }
            UnaryOp::Log1p => {
                let c = self.initializer(format!("{}/one", n.name), &one());
                let s = format!("{}/plus_one", n.name);
                self.node("Add", s.clone(), vec![x, c], vec![s.clone()], vec![]);
                return self.node("Log", n.name.clone(), vec![s], vec![out], vec![]);
            }
        };
        self.node(op, n.name.clone(), vec![x], vec![out], vec![]);
    }

    fn binary(&mut self, n: &Node, b: BinaryOp) -> std::result::Result<(), String> {
        let ins = vec![self.name(n.inputs[0]), self.name(n.inputs[1])];
        let out = format!("{}:0", n.name);
        let op = match b {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Maximum => "Max",
            BinaryOp::Minimum => "Min",
            BinaryOp::Pow => "Pow",
            BinaryOp::Equal => "Equal",
            BinaryOp::Less => "Less",
            BinaryOp::LessEqual => "LessOrEqual",
            BinaryOp::Greater => "Greater",
            BinaryOp::GreaterEqual => "GreaterOrEqual",
            BinaryOp::LogicalAnd => "And",
            BinaryOp::LogicalOr => "Or",
            BinaryOp::NotEqual => {
                let e = format!("{}/equal", n.name);
                self.node("Equal", e.clone(), ins, vec![e.clone()], vec![]);
                self.node("Not", n.name.clone(), vec![e], vec![out], vec![]);
                return Ok(());
            }
            BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad => {
                return Err(format!("{} is a training op (export an inference graph)", b.type_name()));
            }
        };
        self.node(op, n.name.clone(), ins, vec![out], vec![]);
        Ok(())
    }
}

fn pad(p: Padding) -> &'static str {
    match p {
        // TF's SAME puts the odd padding cell at the end, as ONNX's SAME_UPPER.
        Padding::Same => "SAME_UPPER",
        Padding::Valid => "VALID",
    }
}

/// The part of `g` that `outputs` need, as an ONNX model: variables take their values in `sess`
/// (their initial values must have been run or restored), placeholders become the model's
/// inputs under their tensor names (`X:0`), each output keeps its tensor name.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::io::onnx::to_onnx;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(4)]).named("X")?;
/// let logits = layers::dense(&x, 3, Some(nn::relu), "dense")?;
/// let sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// let model = to_onnx(&g, &sess, &[&logits])?;
/// let graph = model.graph.unwrap();
/// let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
/// assert_eq!(ops, ["Identity", "MatMul", "Identity", "Add", "Relu"]);
/// assert_eq!((graph.input[0].name.as_str(), graph.initializer.len()), ("X:0", 2));
/// # Ok(()) }
/// ```
pub fn to_onnx(g: &Graph, sess: &Session, outputs: &[&Tensor]) -> Result<ModelProto> {
    let values = g
        .global_variables()
        .iter()
        .filter_map(|v| match sess.variable_value(v) {
            Ok(Some(value)) => Some(Ok((v.name(), value))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<HashMap<String, Value>>>()?;
    g.read(|d| {
        let mut keep = HashSet::new();
        let mut stack: Vec<NodeIndex> = outputs.iter().map(|t| t.endpoint().node).collect();
        while let Some(i) = stack.pop() {
            if keep.insert(i) {
                stack.extend(d.node(i).inputs.iter().map(|e| e.node));
            }
        }
        let mut w = Writer { d, values: &values, graph: GraphProto::default(), written: HashSet::new() };
        w.graph.name = "tensorgraph".into();
        for i in d.dag.node_indices().filter(|i| keep.contains(i)) {
            let n = d.node(i);
            w.write(n).map_err(|detail| Error::InvalidArgument { node: n.info(), detail })?;
        }
        for t in outputs {
            let spec = d.spec(t.endpoint());
            w.graph.output.push(value_info(w.name(t.endpoint()), spec.dtype, &spec.shape));
        }
        Ok(ModelProto {
            ir_version: IR_VERSION,
            producer_name: "tensorgraph".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(w.graph),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        })
    })
}
