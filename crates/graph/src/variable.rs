//! Variables and their initializers, with TF1's names: `w`, `w/Assign`, `w/read`,
//! `w/Initializer/...`.

use crate::error::{Error, Result, SourceLocation};
use crate::graph::{Graph, Operation, Tensor, VariableInfo};
use crate::op::Op;
use crate::ops::random;
use crate::DType;
use std::ops::Deref;

/// How a variable's first value is made. Glorot-uniform is `tf.layers`' default kernel
/// initializer; zeros its default bias initializer.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    Zeros,
    Ones,
    Constant(f64),
    RandomUniform {
        minval: f64,
        maxval: f64,
        seed: Option<u64>,
    },
    TruncatedNormal {
        mean: f64,
        stddev: f64,
        seed: Option<u64>,
    },
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform {
        seed: Option<u64>,
    },
    /// TF's `VarianceScaling`: variance `scale / n` with `n` the fan-in, fan-out or their mean.
    /// He = (2, FanIn), LeCun = (1, FanIn), Glorot = (1, FanAvg); see the constructors.
    VarianceScaling {
        scale: f64,
        mode: FanMode,
        distribution: Distribution,
        seed: Option<u64>,
    },
}

/// Which fan [`Initializer::VarianceScaling`] divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
    FanAvg,
}

/// The distribution of [`Initializer::VarianceScaling`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Normal truncated at two standard deviations, rescaled to keep the variance (TF's default).
    TruncatedNormal,
    UntruncatedNormal,
    Uniform,
}

impl Initializer {
    /// `tf.initializers.he_normal` (`he_uniform` with `Distribution::Uniform`).
    pub fn he(distribution: Distribution, seed: Option<u64>) -> Initializer {
        Initializer::VarianceScaling { scale: 2.0, mode: FanMode::FanIn, distribution, seed }
    }

    /// `tf.initializers.lecun_normal` / `lecun_uniform`.
    pub fn lecun(distribution: Distribution, seed: Option<u64>) -> Initializer {
        Initializer::VarianceScaling { scale: 1.0, mode: FanMode::FanIn, distribution, seed }
    }

    /// `tf.initializers.glorot_normal` / `glorot_uniform`.
    pub fn glorot(distribution: Distribution, seed: Option<u64>) -> Initializer {
        Initializer::VarianceScaling { scale: 1.0, mode: FanMode::FanAvg, distribution, seed }
    }
}

/// Fan-in and fan-out of a kernel shape as TF computes them (receptive field times channels).
pub fn fans(shape: &[usize]) -> (f64, f64) {
    match shape {
        [] => (1.0, 1.0),
        [n] => (*n as f64, *n as f64),
        [i, o] => (*i as f64, *o as f64),
        _ => {
            let receptive: usize = shape[..shape.len() - 2].iter().product();
            let (i, o) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            ((receptive * i) as f64, (receptive * o) as f64)
        }
    }
}

impl Initializer {
    /// Builds the ops producing the initial value.
    #[track_caller]
    pub fn build(&self, g: &Graph, shape: &[usize], dtype: DType) -> Result<Tensor> {
        match *self {
            Initializer::Zeros => crate::ops::array::fill(g, shape, dtype, 0.0),
            Initializer::Ones => crate::ops::array::fill(g, shape, dtype, 1.0),
            Initializer::Constant(v) => crate::ops::array::fill(g, shape, dtype, v),
            Initializer::RandomUniform { minval, maxval, seed } => {
                random::random_uniform(g, shape, dtype, minval, maxval, seed)
            }
            Initializer::TruncatedNormal { mean, stddev, seed } => {
                random::truncated_normal(g, shape, dtype, mean, stddev, seed)
            }
            Initializer::VarianceScaling { scale, mode, distribution, seed } => {
                let (fan_in, fan_out) = fans(shape);
                let n = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                let variance = scale / n.max(1.0);
                match distribution {
                    // 0.8796... is the standard deviation of a standard normal truncated at ±2.
                    Distribution::TruncatedNormal => {
                        random::truncated_normal(g, shape, dtype, 0.0, variance.sqrt() / 0.879_625_661_034_239_8, seed)
                    }
                    Distribution::UntruncatedNormal => {
                        random::random_normal(g, shape, dtype, 0.0, variance.sqrt(), seed)
                    }
                    Distribution::Uniform => {
                        let limit = (3.0 * variance).sqrt();
                        random::random_uniform(g, shape, dtype, -limit, limit, seed)
                    }
                }
            }
            Initializer::GlorotUniform { seed } => {
                let (fan_in, fan_out) = fans(shape);
                let limit = (6.0 / (fan_in + fan_out)).sqrt();
                random::random_uniform(g, shape, dtype, -limit, limit, seed)
            }
        }
    }
}

/// A variable: its `VariableV2` node, the `read` tensor ops consume, and its initializer.
/// It dereferences to the read tensor, so it can be passed wherever a `&Tensor` goes.
#[derive(Clone, Debug)]
pub struct Variable {
    var: Tensor,
    read: Tensor,
    initializer: Operation,
    trainable: bool,
}

impl Variable {
    pub(crate) fn from_info(g: &Graph, i: VariableInfo) -> Variable {
        let t = |node| Tensor::from_endpoint(g, crate::Endpoint { node, slot: 0 }).expect("variable nodes exist");
        Variable { var: t(i.var), read: t(i.read), initializer: t(i.initializer).op(), trainable: i.trainable }
    }

    /// The `VariableV2` output: the reference that assignments and optimizers update.
    pub fn var_ref(&self) -> &Tensor {
        &self.var
    }

    /// The current value (the `<name>/read` identity).
    pub fn value(&self) -> &Tensor {
        &self.read
    }

    /// A new read of the variable, made under the current control dependencies, like TF1's
    /// `v.read_value()`: unlike [`Variable::value`] it sees updates it is ordered after.
    #[track_caller]
    pub fn read_value(&self) -> Result<Tensor> {
        self.var.graph().add_op1(Op::Identity, &[&self.var], Some("read_value"))
    }

    /// The `<name>/Assign` op that sets the initial value.
    pub fn initializer(&self) -> &Operation {
        &self.initializer
    }

    /// The variable's name, like `hidden1/kernel`.
    pub fn name(&self) -> String {
        self.var.op_name()
    }

    /// Whether optimizers update it by default.
    pub fn trainable(&self) -> bool {
        self.trainable
    }
}

impl Deref for Variable {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.read
    }
}

impl Graph {
    /// Creates a variable named `name` in the current name scope whose initial value is
    /// `initial_value` (which must have a fully known shape), as `tf.Variable(initial_value)`.
    #[track_caller]
    pub fn variable(&self, initial_value: &Tensor, name: &str, trainable: bool) -> Result<Variable> {
        if let Some(root) = self.root_if_function() {
            return root.variable(initial_value, name, trainable);
        }
        let location = SourceLocation::caller();
        let spec = initial_value.spec();
        let shape = spec.shape.to_vec().ok_or_else(|| Error::InvalidArgument {
            node: initial_value.op().info(),
            detail: format!("a variable's initial value needs a fully known shape, got {}", spec.shape),
        })?;
        let scope = self.current_name_scope();
        let full = if scope.is_empty() { name.to_string() } else { format!("{scope}/{name}") };
        self.make_variable(&full, spec.dtype, &shape, trainable, location, |_| Ok(initial_value.clone()))
    }

    /// Creates variable `name` in the current variable scope (ignoring name scopes, as TF1's
    /// `tf.get_variable`), initialised by `init`. Creating the same name twice is an error.
    #[track_caller]
    pub fn get_variable(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        init: &Initializer,
        trainable: bool,
    ) -> Result<Variable> {
        if let Some(root) = self.root_if_function() {
            return root.get_variable(name, shape, dtype, init, trainable);
        }
        let (full, reuse) = match self.var_scope() {
            Some((s, reuse)) => (format!("{s}/{name}"), reuse),
            None => (name.to_string(), false),
        };
        if reuse {
            if let Some(v) = self.global_variables().into_iter().find(|v| v.name() == full) {
                let spec = v.spec();
                if spec.dtype != dtype || spec.shape.to_vec().as_deref() != Some(shape) {
                    return Err(Error::InvalidArgument {
                        node: v.op().info(),
                        detail: format!(
                            "reusing {full} as {dtype} {} but it is {} {}",
                            crate::fmt_dims(shape),
                            spec.dtype,
                            spec.shape
                        ),
                    });
                }
                return Ok(v);
            }
        }
        self.new_variable(&full, shape, dtype, init, trainable)
    }

    /// Creates the variable whose full name is `full_name`, whatever the current scopes (how
    /// optimizers name their slots, `hidden1/kernel/Adam`). Creating a name twice is an error.
    #[track_caller]
    pub fn new_variable(
        &self,
        full_name: &str,
        shape: &[usize],
        dtype: DType,
        init: &Initializer,
        trainable: bool,
    ) -> Result<Variable> {
        if let Some(root) = self.root_if_function() {
            return root.new_variable(full_name, shape, dtype, init, trainable);
        }
        let location = SourceLocation::caller();
        if let Some(existing) = self.read(|d| d.find(full_name).map(|n| d.node(n).location.clone())) {
            return Err(Error::DuplicateVariable { name: full_name.to_string(), location: existing });
        }
        self.make_variable(full_name, dtype, shape, trainable, location, |g| {
            g.name_scope("Initializer", || init.build(g, shape, dtype))
        })
    }

    fn make_variable(
        &self,
        full: &str,
        dtype: DType,
        shape: &[usize],
        trainable: bool,
        location: SourceLocation,
        initial: impl FnOnce(&Graph) -> Result<Tensor>,
    ) -> Result<Variable> {
        // Outside any control_dependencies block (TF's init_scope): an initializer must not wait
        // for, say, the update ops a train op is built under.
        self.init_scope(|| {
            // Absolute scopes: the variable's own ops live under its full name, whatever the
            // current name scope is (TF1's variable_scope behaviour).
            let (var, init_value) = self.name_scope("/", || {
                let var = self.add_node(
                    Op::VariableV2 { dtype, shape: shape.to_vec() },
                    &[],
                    &[],
                    Some(full),
                    location.clone(),
                )?;
                let init_value = self.name_scope(&format!("{}/", var.name()), || initial(self))?;
                Ok((var.output(0)?, init_value))
            })?;
            let var_name = var.op_name();
            let (assign, read) = self.name_scope(&format!("{var_name}/"), || {
                let assign = self.add_node(Op::Assign, &[&var, &init_value], &[], Some("Assign"), location.clone())?;
                let read = self.add_node(Op::Identity, &[&var], &[], Some("read"), location.clone())?;
                Ok((assign, read))
            })?;
            let info =
                VariableInfo { var: var.endpoint().node, read: read.node(), initializer: assign.node(), trainable };
            self.register_variable(info)?;
            Ok(Variable::from_info(self, info))
        })
    }
}
