//! Layers with TF1's defaults and variable names (`tf.layers`).

mod batch_norm;

pub use batch_norm::{batch_normalization, BatchNormalization};

use crate::{collections, DType, Error, Graph, Initializer, Result, Tensor, Variable};

/// An activation function such as [`crate::nn::relu`].
pub type Activation = fn(&Tensor) -> Result<Tensor>;

/// A weight penalty whose loss a layer adds to the `regularization_losses` collection (sum them
/// with [`crate::losses::get_regularization_loss`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regularizer {
    /// `scale·Σw²` (`tf.keras.regularizers.l2`; `tf.contrib.layers.l2_regularizer` is half that).
    L2(f64),
    /// `scale·Σ|w|`.
    L1(f64),
}

impl Regularizer {
    /// The penalty of `w`, in name scope `Regularizer`.
    #[track_caller]
    pub fn loss(&self, w: &Tensor) -> Result<Tensor> {
        use crate::math::{abs, mul, reduce_sum, square};
        let _scope = w.graph().enter_name_scope("Regularizer");
        let (scale, terms) = match *self {
            Regularizer::L2(scale) => (scale, square(w)?),
            Regularizer::L1(scale) => (scale, abs(w)?),
        };
        mul(&w.graph().scalar(scale, w.dtype())?, &reduce_sum(&terms, None)?)
    }
}

/// A layer's `kernel` variable; its penalty, if any, goes to the regularization-losses collection.
#[track_caller]
fn kernel_variable(
    g: &Graph,
    shape: &[usize],
    dtype: DType,
    init: &Initializer,
    regularizer: Option<Regularizer>,
    trainable: bool,
) -> Result<Variable> {
    let kernel = g.get_variable("kernel", shape, dtype, init, trainable)?;
    if let Some(r) = regularizer {
        let _scope = g.enter_name_scope(&format!("{}/", kernel.name()));
        g.add_to_collection(collections::REGULARIZATION_LOSSES, &r.loss(&kernel)?);
    }
    Ok(kernel)
}

/// A fully connected layer, as `tf.layers.dense(x, units, activation, name=name)`: variables
/// `<name>/kernel` (Glorot-uniform) and `<name>/bias` (zeros) in the variable scope, ops
/// `MatMul`, `BiasAdd` and the activation in the name scope `<name>`.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::layers;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
/// let h = g.name_scope("dnn", || layers::dense(&x, 300, Some(nn::relu), "hidden1"))?;
/// assert_eq!(h.op_name(), "dnn/hidden1/Relu");
/// assert_eq!(h.shape().to_string(), "[?,300]");
/// let names: Vec<String> = g.trainable_variables().iter().map(|v| v.name()).collect();
/// assert_eq!(names, ["hidden1/kernel", "hidden1/bias"]);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn dense(x: &Tensor, units: usize, activation: Option<Activation>, name: &str) -> Result<Tensor> {
    Dense::new(units).activation(activation).build(x, name)
}

/// [`dense`] with every option, builder style.
#[derive(Clone, Debug)]
pub struct Dense {
    units: usize,
    activation: Option<Activation>,
    use_bias: bool,
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
    kernel_regularizer: Option<Regularizer>,
    trainable: bool,
}

impl Dense {
    /// A layer of `units` outputs with TF1's defaults.
    pub fn new(units: usize) -> Dense {
        Dense {
            units,
            activation: None,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform { seed: None },
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            trainable: true,
        }
    }

    pub fn activation(mut self, f: Option<Activation>) -> Dense {
        self.activation = f;
        self
    }

    pub fn use_bias(mut self, on: bool) -> Dense {
        self.use_bias = on;
        self
    }

    pub fn kernel_initializer(mut self, init: Initializer) -> Dense {
        self.kernel_initializer = init;
        self
    }

    pub fn bias_initializer(mut self, init: Initializer) -> Dense {
        self.bias_initializer = init;
        self
    }

    /// Adds the kernel's penalty to the regularization losses.
    pub fn kernel_regularizer(mut self, r: Regularizer) -> Dense {
        self.kernel_regularizer = Some(r);
        self
    }

    pub fn trainable(mut self, on: bool) -> Dense {
        self.trainable = on;
        self
    }

    /// Applies the layer to `x` (`[batch, features]` with `features` known).
    #[track_caller]
    pub fn build(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let g = x.graph();
        let shape = x.shape();
        let dtype = x.dtype();
        let in_dim = match (shape.rank(), shape.dims().last()) {
            (2, Some(Some(d))) if dtype.is_float() => *d,
            _ => {
                return Err(Error::InvalidArgument {
                    node: x.op().info(),
                    detail: format!(
                        "dense layer '{name}' needs a float [batch, features] input with known features, got {} {}",
                        dtype, shape
                    ),
                })
            }
        };
        let _scope = g.enter_variable_scope(name);
        let shape = [in_dim, self.units];
        let kernel =
            kernel_variable(g, &shape, dtype, &self.kernel_initializer, self.kernel_regularizer, self.trainable)?;
        let mut y = crate::math::matmul(x, &kernel, false, false)?;
        if self.use_bias {
            let bias = g.get_variable("bias", &[self.units], dtype, &self.bias_initializer, self.trainable)?;
            y = crate::nn::bias_add(&y, &bias)?;
        }
        match self.activation {
            Some(f) => f(&y),
            None => Ok(y),
        }
    }
}

/// A 2-D convolution layer, as `tf.layers.conv2d(x, filters, kernel_size, strides, padding,
/// activation=..., name=name)`: variables `<name>/kernel` `[k, k, in, filters]` (Glorot-uniform)
/// and `<name>/bias` (zeros); ops `Conv2D`, `BiasAdd` and the activation in scope `<name>`.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::layers;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(1)]).named("x")?;
/// let c1 = layers::conv2d(&x, 32, 3, 1, Padding::Same, Some(nn::relu), "conv1")?;
/// let c2 = layers::conv2d(&c1, 64, 3, 2, Padding::Same, Some(nn::relu), "conv2")?;
/// assert_eq!(c2.shape().to_string(), "[?,14,14,64]");
/// assert_eq!(layers::flatten(&layers::max_pooling2d(&c2, 2, 2, Padding::Valid, "pool3")?)?.shape().to_string(), "[?,3136]");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn conv2d(
    x: &Tensor,
    filters: usize,
    kernel_size: usize,
    strides: usize,
    padding: crate::Padding,
    activation: Option<Activation>,
    name: &str,
) -> Result<Tensor> {
    Conv2D::new(filters, kernel_size).strides(strides).padding(padding).activation(activation).build(x, name)
}

/// [`conv2d`] with every option, builder style (defaults: stride 1, VALID as in TF).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::layers::{Conv2D, Regularizer};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(1)]).named("x")?;
/// let y = Conv2D::new(32, 3)
///     .padding(Padding::Same)
///     .kernel_initializer(Initializer::he(Distribution::TruncatedNormal, Some(1)))
///     .kernel_regularizer(Regularizer::L2(1e-4))
///     .use_bias(false)
///     .build(&x, "conv1")?;
/// assert_eq!(y.shape().to_string(), "[?,28,28,32]");
/// assert_eq!(g.get_collection(collections::REGULARIZATION_LOSSES).len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Conv2D {
    filters: usize,
    kernel_size: usize,
    strides: usize,
    padding: crate::Padding,
    activation: Option<Activation>,
    use_bias: bool,
    kernel_initializer: Initializer,
    kernel_regularizer: Option<Regularizer>,
}

impl Conv2D {
    /// `filters` square `kernel_size` filters with TF1's defaults.
    pub fn new(filters: usize, kernel_size: usize) -> Conv2D {
        Conv2D {
            filters,
            kernel_size,
            strides: 1,
            padding: crate::Padding::Valid,
            activation: None,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform { seed: None },
            kernel_regularizer: None,
        }
    }

    pub fn strides(mut self, s: usize) -> Conv2D {
        self.strides = s;
        self
    }

    pub fn padding(mut self, p: crate::Padding) -> Conv2D {
        self.padding = p;
        self
    }

    pub fn activation(mut self, f: Option<Activation>) -> Conv2D {
        self.activation = f;
        self
    }

    pub fn use_bias(mut self, on: bool) -> Conv2D {
        self.use_bias = on;
        self
    }

    pub fn kernel_initializer(mut self, init: Initializer) -> Conv2D {
        self.kernel_initializer = init;
        self
    }

    /// Adds the kernel's penalty to the regularization losses.
    pub fn kernel_regularizer(mut self, r: Regularizer) -> Conv2D {
        self.kernel_regularizer = Some(r);
        self
    }

    /// Applies the layer to `x` (NHWC with known channels).
    #[track_caller]
    pub fn build(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let g = x.graph();
        let shape = x.shape();
        let in_c = match (shape.rank(), shape.dims().last()) {
            (4, Some(Some(c))) if x.dtype().is_float() => *c,
            _ => {
                return Err(Error::InvalidArgument {
                    node: x.op().info(),
                    detail: format!(
                        "conv2d layer '{name}' needs a float NHWC input with known channels, got {} {shape}",
                        x.dtype()
                    ),
                })
            }
        };
        let _scope = g.enter_variable_scope(name);
        let kshape = [self.kernel_size, self.kernel_size, in_c, self.filters];
        let kernel = kernel_variable(g, &kshape, x.dtype(), &self.kernel_initializer, self.kernel_regularizer, true)?;
        let s = self.strides;
        let mut y = crate::nn::conv2d(x, &kernel, [1, s, s, 1], self.padding)?;
        if self.use_bias {
            let bias = g.get_variable("bias", &[self.filters], x.dtype(), &Initializer::Zeros, true)?;
            y = crate::nn::bias_add(&y, &bias)?;
        }
        match self.activation {
            Some(f) => f(&y),
            None => Ok(y),
        }
    }
}

/// `tf.layers.dropout(x, rate, training=training)`: while `training` (a bool scalar tensor, such
/// as a `placeholder_with_default(false)` the training loop feeds true) each element is zeroed
/// with probability `rate` and the rest scaled by `1/(1-rate)`; otherwise `x` passes unchanged.
/// In name scope `dropout`, seeded by the graph seed (see [`crate::nn::dropout`] for a seed).
///
/// ```
/// use tensorgraph::prelude::*;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(64)]).named("x")?;
/// let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool)?).named("training")?;
/// let dropped = layers::dropout(&x, 0.5, &training)?;
/// assert!(dropped.op_name().starts_with("dropout/"));
/// # Ok(()) }
/// ```
#[track_caller]
pub fn dropout(x: &Tensor, rate: f64, training: &Tensor) -> Result<Tensor> {
    x.graph().name_scope("dropout", || crate::nn::dropout(x, rate, training, None))
}

/// Max pooling with a square window, as `tf.layers.max_pooling2d` (op `<name>/MaxPool`).
#[track_caller]
pub fn max_pooling2d(
    x: &Tensor,
    pool_size: usize,
    strides: usize,
    padding: crate::Padding,
    name: &str,
) -> Result<Tensor> {
    let _scope = x.graph().enter_name_scope(name);
    crate::nn::max_pool(x, [1, pool_size, pool_size, 1], [1, strides, strides, 1], padding)
}

/// Flattens every dimension but the first, as `tf.layers.flatten`; they must be known.
#[track_caller]
pub fn flatten(x: &Tensor) -> Result<Tensor> {
    let shape = x.shape();
    let rest: Option<usize> = shape.dims().iter().skip(1).copied().product();
    match rest {
        Some(n) if shape.rank() >= 1 => crate::array::reshape(x, &[-1, n as i64]),
        _ => Err(Error::InvalidArgument {
            node: x.op().info(),
            detail: format!("flatten needs every dimension but the first known, got {shape}"),
        }),
    }
}
