//! Recurrent networks as TF1 builds them (`tf.nn.rnn_cell`, `tf.nn.static_rnn`,
//! `tf.nn.dynamic_rnn`): the cells' variables, gate order and defaults are TF's, so weights
//! trained by TF load by name (`rnn/basic_lstm_cell/kernel`, ...).
//!
//! Each step is one GEMM over `[inputs, h]` for all gates, as TF's cells compute it.
//! [`dynamic_rnn`] unrolls over the number of time steps when the graph knows it (the fastest
//! form), and otherwise runs TF's `while_loop` over the steps the inputs have when the graph
//! runs; `sequence_length` gives TF's semantics: outputs past a sequence's end are zero and its
//! state is carried through unchanged.
//!
//! ```
//! use tensorgraph::prelude::*;
//! use tensorgraph::rnn::{self, BasicLSTMCell};
//! # fn main() -> tensorgraph::Result<()> {
//! let g = Graph::new();
//! let x = g.placeholder(DType::F32, [None, Some(28), Some(28)]).named("X")?;
//! let cell = BasicLSTMCell::new(128);
//! let (outputs, state) = rnn::dynamic_rnn(&cell, &x, None, None)?;
//! assert_eq!(outputs.shape().to_string(), "[?,28,128]");
//! assert_eq!(state.len(), 2); // c and h
//! let names: Vec<String> = g.trainable_variables().iter().map(|v| v.name()).collect();
//! assert_eq!(names, ["rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"]);
//! # Ok(()) }
//! ```

use crate::{array, math, nn, Error, Initializer, Result, Tensor};

/// An activation of a cell's output (TF's `activation=`), `nn::tanh` by default.
pub type Activation = fn(&Tensor) -> Result<Tensor>;

/// A recurrent cell, as TF's `RNNCell`: one step maps `(inputs, state)` to `(output, state)`.
/// A state is a list of `[batch, size]` tensors (an LSTM's is `[c, h]`, as TF's
/// `LSTMStateTuple`; a [`MultiRNNCell`]'s the cells' lists one after the other).
pub trait RNNCell {
    /// The size of each part of the state.
    fn state_size(&self) -> Vec<usize>;
    /// The size of the output.
    fn output_size(&self) -> usize;
    /// The variable scope the cell's variables live in (`basic_lstm_cell`, ...).
    fn scope_name(&self) -> String;
    /// One step, in the current variable scope: the first call creates the variables, later
    /// calls share them.
    fn step(&self, inputs: &Tensor, state: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)>;

    /// A zero state for the batch of `inputs` (`[batch, ...]`): TF's `zero_state(batch_size)`
    /// with the batch size taken from the inputs at run time.
    #[track_caller]
    fn zero_state(&self, inputs: &Tensor) -> Result<Vec<Tensor>> {
        let g = inputs.graph();
        // A [batch, 1] column of zeros (whatever `inputs` holds, NaN included), broadcast to
        // [batch, size].
        let rank = inputs.shape().rank();
        let column =
            array::zeros_like(&array::slice(inputs, &vec![0; rank], &[vec![-1], vec![1; rank - 1]].concat())?)?;
        let column = array::reshape(&column, &[-1, 1])?;
        self.state_size().into_iter().map(|n| math::add(&column, &array::zeros(g, &[1, n], inputs.dtype())?)).collect()
    }
}

/// The size of the last dimension of a cell's `[batch, features]` input.
fn features(x: &Tensor) -> Result<usize> {
    match (x.shape().rank(), x.shape().dim(1)) {
        (2, Some(d)) => Ok(d),
        _ => Err(Error::InvalidArgument {
            node: x.op().info(),
            detail: format!(
                "a recurrent cell needs [batch, features] inputs with known features, got shape {}",
                x.shape()
            ),
        }),
    }
}

/// `concat([inputs, h], 1) · kernel + bias`, the variables created (or shared) in the current
/// variable scope under `kernel_name`/`bias_name`.
fn linear(inputs: &[&Tensor], units: usize, bias_init: &Initializer) -> Result<Tensor> {
    let x = array::concat(inputs, 1)?;
    let g = x.graph();
    let in_dim = features(&x)?;
    let kernel =
        g.get_variable("kernel", &[in_dim, units], x.dtype(), &Initializer::GlorotUniform { seed: None }, true)?;
    let bias = g.get_variable("bias", &[units], x.dtype(), bias_init, true)?;
    nn::bias_add(&math::matmul(&x, &kernel, false, false)?, &bias)
}

/// `tf.nn.rnn_cell.BasicRNNCell`: `h' = activation([x, h] · kernel + bias)`.
#[derive(Clone, Debug)]
pub struct BasicRNNCell {
    pub num_units: usize,
    pub activation: Activation,
}

impl BasicRNNCell {
    /// A cell of `num_units` with TF's default activation, `tanh`.
    pub fn new(num_units: usize) -> Self {
        BasicRNNCell { num_units, activation: nn::tanh }
    }
}

impl RNNCell for BasicRNNCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.num_units]
    }
    fn output_size(&self) -> usize {
        self.num_units
    }
    fn scope_name(&self) -> String {
        "basic_rnn_cell".into()
    }
    fn step(&self, inputs: &Tensor, state: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let h = (self.activation)(&linear(&[inputs, &state[0]], self.num_units, &Initializer::Zeros)?)?;
        Ok((h.clone(), vec![h]))
    }
}

/// `tf.nn.rnn_cell.BasicLSTMCell` (and `LSTMCell` without peepholes or projection, whose
/// variables live in `lstm_cell`): gates `i, j, f, o` in that order from one GEMM,
/// `c' = c·σ(f + forget_bias) + σ(i)·tanh(j)`, `h' = tanh(c')·σ(o)`; state `[c, h]`. With
/// TF's default activation each step is one `LSTMBlockCell` op (TF's fused kernel, the same
/// variables): one GEMM and one pass over the gates, forward and backward.
#[derive(Clone, Debug)]
pub struct BasicLSTMCell {
    pub num_units: usize,
    /// Added to the forget gate's pre-activation (TF's default 1.0).
    pub forget_bias: f64,
    /// `None`: tanh, TF's default (and the fused step); another activation is built from ops.
    pub activation: Option<Activation>,
}

impl BasicLSTMCell {
    /// A cell of `num_units` with TF's defaults (forget bias 1.0, `tanh`).
    pub fn new(num_units: usize) -> Self {
        BasicLSTMCell { num_units, forget_bias: 1.0, activation: None }
    }
}

/// `tf.nn.rnn_cell.LSTMCell`: [`BasicLSTMCell`]'s step with TF's options: peepholes (`w_f_diag`,
/// `w_i_diag`, `w_o_diag`), a cell clip, and a projection of the output to `num_proj` units
/// (`projection/kernel`, optionally clipped). The state is `(c, m)`, `m` the projected output.
/// Without projection the step is the fused `LSTMBlockCell` op, peepholes and clip included.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::rnn::{self, LSTMCell};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(7), Some(3)]).named("x")?;
/// let cell = LSTMCell { use_peepholes: true, num_proj: Some(4), ..LSTMCell::new(8) };
/// let (outputs, state) = rnn::dynamic_rnn(&cell, &x, None, None)?;
/// assert_eq!((outputs.shape().to_string(), state[0].shape().to_string()), ("[?,7,4]".into(), "[?,8]".into()));
/// let names: Vec<String> = g.trainable_variables().iter().map(|v| v.name()).collect();
/// assert_eq!(names[2..], ["rnn/lstm_cell/w_f_diag", "rnn/lstm_cell/w_i_diag", "rnn/lstm_cell/w_o_diag", "rnn/lstm_cell/projection/kernel"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LSTMCell {
    pub num_units: usize,
    pub use_peepholes: bool,
    /// Clips the cell state to `[-clip, clip]` (TF's `cell_clip`).
    pub cell_clip: Option<f64>,
    /// Projects the output (and the `m` state) to this many units.
    pub num_proj: Option<usize>,
    /// Clips the projected output to `[-clip, clip]`.
    pub proj_clip: Option<f64>,
    pub forget_bias: f64,
}

impl LSTMCell {
    /// A cell of `num_units` with TF's defaults: no peepholes, clip or projection, forget bias 1.
    pub fn new(num_units: usize) -> Self {
        LSTMCell { num_units, use_peepholes: false, cell_clip: None, num_proj: None, proj_clip: None, forget_bias: 1.0 }
    }
}

impl RNNCell for LSTMCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.num_units, self.output_size()]
    }
    fn output_size(&self) -> usize {
        self.num_proj.unwrap_or(self.num_units)
    }
    fn scope_name(&self) -> String {
        "lstm_cell".into()
    }
    fn step(&self, inputs: &Tensor, state: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let (c, m) = (&state[0], &state[1]);
        let (g, dtype, units) = (inputs.graph(), inputs.dtype(), self.num_units);
        let glorot = Initializer::GlorotUniform { seed: None };
        let in_dim = features(inputs)?;
        let kernel = g.get_variable("kernel", &[in_dim + self.output_size(), 4 * units], dtype, &glorot, true)?;
        let bias = g.get_variable("bias", &[4 * units], dtype, &Initializer::Zeros, true)?;
        // [input, forget, output] peepholes, made in TF's order (w_f_diag, w_i_diag, w_o_diag).
        let peepholes = if self.use_peepholes {
            let wf = g.get_variable("w_f_diag", &[units], dtype, &glorot, true)?;
            let wi = g.get_variable("w_i_diag", &[units], dtype, &glorot, true)?;
            let wo = g.get_variable("w_o_diag", &[units], dtype, &glorot, true)?;
            Some([wi.value().clone(), wf.value().clone(), wo.value().clone()])
        } else {
            None
        };
        let clip = self.cell_clip.unwrap_or(-1.0);
        let Some(num_proj) = self.num_proj else {
            let zero = array::zeros(g, &[units], dtype)?;
            let [wci, wcf, wco] = peepholes.unwrap_or_else(|| [zero.clone(), zero.clone(), zero.clone()]);
            let out = nn::lstm_block_cell(
                inputs,
                c,
                m,
                &kernel,
                [&wci, &wcf, &wco],
                &bias,
                self.forget_bias,
                clip,
                self.use_peepholes,
            )?;
            return Ok((out[6].clone(), vec![out[1].clone(), out[6].clone()]));
        };
        // With a projection the step is built from ops (the block op's h is the cell's size).
        let gates = nn::bias_add(&math::matmul(&array::concat(&[inputs, m], 1)?, &kernel, false, false)?, &bias)?;
        let [i, j, f, o]: [Tensor; 4] = array::split(&gates, 4, 1)?.try_into().expect("four gates");
        let peep = |x: &Tensor, k: usize, by: &Tensor| -> Result<Tensor> {
            match &peepholes {
                Some(w) => math::add(x, &math::mul(&w[k], by)?),
                None => Ok(x.clone()),
            }
        };
        let forget_bias = g.scalar(self.forget_bias, dtype)?;
        let forget = nn::sigmoid(&math::add(&peep(&f, 1, c)?, &forget_bias)?)?;
        let mut new_c =
            math::add(&math::mul(&forget, c)?, &math::mul(&nn::sigmoid(&peep(&i, 0, c)?)?, &nn::tanh(&j)?)?)?;
        if let Some(clip) = self.cell_clip {
            new_c = math::clip_by_value(&new_c, &g.scalar(-clip, dtype)?, &g.scalar(clip, dtype)?)?;
        }
        let h = math::mul(&nn::sigmoid(&peep(&o, 2, &new_c)?)?, &nn::tanh(&new_c)?)?;
        let projection =
            g.variable_scope("projection", || g.get_variable("kernel", &[units, num_proj], dtype, &glorot, true))?;
        let mut new_m = math::matmul(&h, &projection, false, false)?;
        if let Some(clip) = self.proj_clip {
            new_m = math::clip_by_value(&new_m, &g.scalar(-clip, dtype)?, &g.scalar(clip, dtype)?)?;
        }
        Ok((new_m.clone(), vec![new_c, new_m]))
    }
}

impl RNNCell for BasicLSTMCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.num_units, self.num_units]
    }
    fn output_size(&self) -> usize {
        self.num_units
    }
    fn scope_name(&self) -> String {
        "basic_lstm_cell".into()
    }
    fn step(&self, inputs: &Tensor, state: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let (c, h) = (&state[0], &state[1]);
        let Some(activation) = self.activation else {
            let g = inputs.graph();
            let units = self.num_units;
            let in_dim = features(inputs)?;
            let glorot = Initializer::GlorotUniform { seed: None };
            let kernel = g.get_variable("kernel", &[in_dim + units, 4 * units], inputs.dtype(), &glorot, true)?;
            let bias = g.get_variable("bias", &[4 * units], inputs.dtype(), &Initializer::Zeros, true)?;
            let no_peephole = array::zeros(g, &[units], inputs.dtype())?;
            let p = &no_peephole;
            let out = nn::lstm_block_cell(inputs, c, h, &kernel, [p, p, p], &bias, self.forget_bias, -1.0, false)?;
            return Ok((out[6].clone(), vec![out[1].clone(), out[6].clone()]));
        };
        let gates = linear(&[inputs, h], 4 * self.num_units, &Initializer::Zeros)?;
        let [i, j, f, o]: [Tensor; 4] = array::split(&gates, 4, 1)?.try_into().expect("four gates");
        let forget_bias = gates.graph().scalar(self.forget_bias, gates.dtype())?;
        let forget = nn::sigmoid(&math::add(&f, &forget_bias)?)?;
        let new_c = math::add(&math::mul(c, &forget)?, &math::mul(&nn::sigmoid(&i)?, &activation(&j)?)?)?;
        let new_h = math::mul(&activation(&new_c)?, &nn::sigmoid(&o)?)?;
        Ok((new_h.clone(), vec![new_c, new_h]))
    }
}

/// `tf.nn.rnn_cell.GRUCell`: gates `r, u = σ([x, h] · gates/kernel + gates/bias)` (bias
/// initialised to 1, as TF's), candidate `c = tanh([x, r·h] · candidate/kernel + candidate/bias)`,
/// `h' = u·h + (1 - u)·c`.
#[derive(Clone, Debug)]
pub struct GRUCell {
    pub num_units: usize,
    pub activation: Activation,
}

impl GRUCell {
    /// A cell of `num_units` with TF's default activation, `tanh`.
    pub fn new(num_units: usize) -> Self {
        GRUCell { num_units, activation: nn::tanh }
    }
}

impl RNNCell for GRUCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.num_units]
    }
    fn output_size(&self) -> usize {
        self.num_units
    }
    fn scope_name(&self) -> String {
        "gru_cell".into()
    }
    fn step(&self, inputs: &Tensor, state: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let h = &state[0];
        let g = h.graph();
        let gates = {
            let _scope = g.enter_variable_scope("gates");
            nn::sigmoid(&linear(&[inputs, h], 2 * self.num_units, &Initializer::Ones)?)?
        };
        let [r, u]: [Tensor; 2] = array::split(&gates, 2, 1)?.try_into().expect("two gates");
        let candidate = {
            let _scope = g.enter_variable_scope("candidate");
            (self.activation)(&linear(&[inputs, &math::mul(&r, h)?], self.num_units, &Initializer::Zeros)?)?
        };
        let one = g.scalar(1.0, h.dtype())?;
        let new_h = math::add(&math::mul(&u, h)?, &math::mul(&math::sub(&one, &u)?, &candidate)?)?;
        Ok((new_h.clone(), vec![new_h]))
    }
}

/// `tf.nn.rnn_cell.MultiRNNCell`: cells stacked, each one's output the next one's input; the
/// variables of cell `k` live in `multi_rnn_cell/cell_<k>/...`; the state is the cells' states
/// one after the other.
pub struct MultiRNNCell {
    pub cells: Vec<Box<dyn RNNCell>>,
}

impl MultiRNNCell {
    pub fn new(cells: Vec<Box<dyn RNNCell>>) -> Self {
        MultiRNNCell { cells }
    }
}

impl RNNCell for MultiRNNCell {
    fn state_size(&self) -> Vec<usize> {
        self.cells.iter().flat_map(|c| c.state_size()).collect()
    }
    fn output_size(&self) -> usize {
        self.cells.last().map_or(0, |c| c.output_size())
    }
    fn scope_name(&self) -> String {
        "multi_rnn_cell".into()
    }
    fn step(&self, inputs: &Tensor, state: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let g = inputs.graph();
        let (mut x, mut rest, mut new_state) = (inputs.clone(), state, Vec::with_capacity(state.len()));
        for (k, cell) in self.cells.iter().enumerate() {
            let n = cell.state_size().len();
            // Reuse is inherited: the first step creates, later steps share.
            let _outer = g.enter_variable_scope(&format!("cell_{k}"));
            let _inner = g.enter_variable_scope(&cell.scope_name());
            let (out, s) = cell.step(&x, &rest[..n])?;
            (x, rest) = (out, &rest[n..]);
            new_state.extend(s);
        }
        Ok((x, new_state))
    }
}

/// `tf.nn.static_rnn`: the cell applied to each of `inputs` (`[batch, features]` each), in
/// variable scope `rnn`, from `initial_state` (zeros if `None`). With `sequence_length`
/// (`[batch]` int), a step at or past a sequence's length outputs zeros and carries the state.
/// Returns the outputs and the final state.
#[track_caller]
pub fn static_rnn(
    cell: &dyn RNNCell,
    inputs: &[Tensor],
    initial_state: Option<Vec<Tensor>>,
    sequence_length: Option<&Tensor>,
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let first = inputs
        .first()
        .ok_or_else(|| Error::NotFound { what: "input step for an RNN (got an empty list)", name: String::new() })?;
    let g = first.graph();
    let _scope = g.enter_variable_scope("rnn");
    let mut state = match initial_state {
        Some(s) => s,
        None => cell.zero_state(first)?,
    };
    let mut outputs = Vec::with_capacity(inputs.len());
    for (t, x) in inputs.iter().enumerate() {
        let (out, new_state) = {
            // The first step creates the variables (an error if they exist: a second RNN
            // needs its own variable scope, as in TF1); later steps share them.
            let _cell = match t {
                0 => g.enter_variable_scope(&cell.scope_name()),
                _ => g.enter_variable_scope_reuse(&cell.scope_name()),
            };
            cell.step(x, &state)?
        };
        match sequence_length {
            None => {
                outputs.push(out);
                state = new_state;
            }
            Some(len) => {
                let t = g.scalar(t as f64, len.dtype())?;
                let running = array::expand_dims(&math::less(&t, len)?, -1)?;
                outputs.push(math::select(&running, &out, &array::zeros_like(&out)?)?);
                state =
                    new_state.iter().zip(&state).map(|(n, s)| math::select(&running, n, s)).collect::<Result<_>>()?;
            }
        }
    }
    Ok((outputs, state))
}

/// `tf.nn.dynamic_rnn` over `inputs` `[batch, time, features]` (TF's default `time_major=False`):
/// outputs `[batch, time, output_size]` and the final state. With a number of time steps unknown
/// when the graph is built (`[None, None, 28]`), the steps run in a `while_loop` (see the module
/// documentation).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::rnn::{self, GRUCell};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, None, Some(3)]).named("x")?;
/// let (outputs, _) = rnn::dynamic_rnn(&GRUCell::new(4), &x, None, None)?;
/// assert_eq!(outputs.shape().to_string(), "[?,?,4]");
/// let mut sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// let y = sess.run(&outputs, feed! {x => ndarray::Array3::<f32>::ones((2, 5, 3))})?;
/// assert_eq!(y.shape(), &[2, 5, 4]);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn dynamic_rnn(
    cell: &dyn RNNCell,
    inputs: &Tensor,
    sequence_length: Option<&Tensor>,
    initial_state: Option<Vec<Tensor>>,
) -> Result<(Tensor, Vec<Tensor>)> {
    if inputs.shape().rank() != 3 || inputs.shape().dim(2).is_none() || !inputs.dtype().is_float() {
        return Err(Error::InvalidArgument {
            node: inputs.op().info(),
            detail: format!(
                "dynamic_rnn needs float inputs [batch, time, features] with known features, got {} {}",
                inputs.dtype(),
                inputs.shape()
            ),
        });
    }
    if inputs.shape().dim(1).is_none() {
        return looped_rnn(cell, inputs, sequence_length, initial_state);
    }
    let steps = array::unstack(inputs, 1)?;
    let (outputs, state) = static_rnn(cell, &steps, initial_state, sequence_length)?;
    let outputs = array::stack(&outputs.iter().collect::<Vec<_>>(), 1)?;
    Ok((outputs, state))
}

/// [`dynamic_rnn`] over a run-time number of steps: a `while_loop` over `(t, outputs so far,
/// state)`, each step's output appended to a `[t, batch, output_size]` accumulator.
fn looped_rnn(
    cell: &dyn RNNCell,
    inputs: &Tensor,
    sequence_length: Option<&Tensor>,
    initial_state: Option<Vec<Tensor>>,
) -> Result<(Tensor, Vec<Tensor>)> {
    use crate::{Index, Shape};
    let g = inputs.graph();
    let _scope = g.enter_variable_scope("rnn");
    let time_major = array::transpose(inputs, Some(&[1, 0, 2]))?;
    let dims = math::shape(inputs, crate::DType::I32)?;
    let (batch, steps) = (array::strided_slice(&dims, &[Index::At(0)])?, array::strided_slice(&dims, &[Index::At(1)])?);
    let state = match initial_state {
        Some(s) => s,
        None => cell.zero_state(inputs)?,
    };
    let out_size = g.scalar(cell.output_size() as f64, crate::DType::I32)?;
    let none = array::fill_dims(
        &array::stack(&[&g.scalar(0.0, crate::DType::I32)?, &batch, &out_size], 0)?,
        &g.scalar(0.0, inputs.dtype())?,
    )?;
    let t0 = g.scalar(0.0, crate::DType::I32)?;
    let mut vars: Vec<&Tensor> = vec![&t0, &none];
    vars.extend(state.iter());
    let mut shapes = vec![Shape::scalar(), Shape::from([None, None, Some(cell.output_size())])];
    shapes.extend(state.iter().map(|s| s.shape()));
    let done = crate::while_loop_with_shapes(
        |v| math::less(&v[0], &steps),
        |v| {
            let (t, acc, state) = (&v[0], &v[1], &v[2..]);
            let x = array::gather(&time_major, t, 0)?;
            let (out, new_state) = {
                let _cell = g.enter_variable_scope(&cell.scope_name());
                cell.step(&x, state)?
            };
            let (out, new_state) = match sequence_length {
                None => (out, new_state),
                Some(len) => {
                    let running = array::expand_dims(&math::less(&t.cast(len.dtype())?, len)?, -1)?;
                    let out = math::select(&running, &out, &array::zeros_like(&out)?)?;
                    let kept = new_state.iter().zip(state).map(|(n, s)| math::select(&running, n, s));
                    (out, kept.collect::<Result<Vec<_>>>()?)
                }
            };
            let one = t.graph().scalar(1.0, crate::DType::I32)?;
            let mut next = vec![math::add(t, &one)?, array::concat(&[acc, &array::expand_dims(&out, 0)?], 0)?];
            next.extend(new_state);
            Ok(next)
        },
        &vars,
        Some(&shapes),
        None,
    )?;
    let outputs = array::transpose(&done[1], Some(&[1, 0, 2]))?;
    Ok((outputs, done[2..].to_vec()))
}
