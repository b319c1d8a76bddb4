//! Layers with TF1's defaults and variable names (`tf.layers`).

use crate::{Error, Initializer, Result, Tensor};

/// An activation function such as [`crate::nn::relu`].
pub type Activation = fn(&Tensor) -> Result<Tensor>;

/// A fully connected layer, as `tf.layers.dense(x, units, activation, name=name)`: variables
/// `<name>/kernel` (Glorot-uniform) and `<name>/bias` (zeros) in the variable scope, ops
/// `MatMul`, `BiasAdd` and the activation in the name scope `<name>`.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::layers;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(784)], "X")?;
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
        let kernel =
            g.get_variable("kernel", &[in_dim, self.units], dtype, &self.kernel_initializer, self.trainable)?;
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
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(1)], "x")?;
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
    let kshape = [kernel_size, kernel_size, in_c, filters];
    let kernel = g.get_variable("kernel", &kshape, x.dtype(), &Initializer::GlorotUniform { seed: None }, true)?;
    let bias = g.get_variable("bias", &[filters], x.dtype(), &Initializer::Zeros, true)?;
    let y = crate::nn::conv2d(x, &kernel, [1, strides, strides, 1], padding)?;
    let y = crate::nn::bias_add(&y, &bias)?;
    match activation {
        Some(f) => f(&y),
        None => Ok(y),
    }
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
