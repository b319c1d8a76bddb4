//! Arithmetic operators on tensors, as TF's Python overloads and candle's `Result`-returning
//! ones: `(&a + &b)?`, `(&x * 2.0)?`, `(1.0 - &p)?`, `(-&x)?`. Each adds the same node as the
//! named function (`math::add`, ...), at the caller's line; a number becomes a scalar constant
//! of the tensor's dtype.
//!
//! ```
//! use tensorgraph_graph::Named;
//! use tensorgraph_graph::{Graph, DType};
//! # fn main() -> tensorgraph_graph::Result<()> {
//! let g = Graph::new();
//! let x = g.placeholder(DType::F32, [None, Some(3)]).named("x")?;
//! let b = g.placeholder(DType::F32, [Some(3)]).named("b")?;
//! let y = ((&x * 2.0)? + &b)?;
//! let z = (1.0 - &(-&y)?)?;
//! assert_eq!((y.op().op_type(), z.op().op_type()), ("AddV2", "Sub"));
//! assert_eq!(z.shape().to_string(), "[?,3]");
//! assert!((&x + &g.placeholder(DType::F32, [Some(4)]).named("c")?).is_err()); // [?,3] + [4]
//! # Ok(()) }
//! ```

use super::math::{binary, unary};
use crate::error::Result;
use crate::graph::Tensor;
use crate::op::{BinaryOp, UnaryOp};
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! binary_operators {
    ($($trait:ident $method:ident => $op:ident;)*) => {$(
        impl $trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                binary(BinaryOp::$op, self, rhs)
            }
        }

        impl $trait<f64> for &Tensor {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: f64) -> Result<Tensor> {
                binary(BinaryOp::$op, self, &self.graph().scalar(rhs, self.dtype())?)
            }
        }

        impl $trait<&Tensor> for f64 {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                binary(BinaryOp::$op, &rhs.graph().scalar(self, rhs.dtype())?, rhs)
            }
        }

        // Owned operands (what `?` on a previous operator gives) borrow into the above.
        impl $trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                $trait::$method(&self, rhs)
            }
        }

        impl $trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                $trait::$method(self, &rhs)
            }
        }

        impl $trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                $trait::$method(&self, &rhs)
            }
        }

        impl $trait<f64> for Tensor {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: f64) -> Result<Tensor> {
                $trait::$method(&self, rhs)
            }
        }

        impl $trait<Tensor> for f64 {
            type Output = Result<Tensor>;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                $trait::$method(self, &rhs)
            }
        }
    )*};
}

binary_operators! {
    Add add => Add;
    Sub sub => Sub;
    Mul mul => Mul;
    Div div => Div;
}

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    #[track_caller]
    fn neg(self) -> Result<Tensor> {
        unary(UnaryOp::Neg, self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    #[track_caller]
    fn neg(self) -> Result<Tensor> {
        unary(UnaryOp::Neg, &self)
    }
}
