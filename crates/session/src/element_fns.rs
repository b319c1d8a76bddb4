//! The element functions of the element-wise ops, each written once.
//!
//! A float op's function is handed to a *loop*: a [`Map`] (unary) or [`Zip`] (binary) that runs
//! it over some storage (out of place, into a recycled buffer, in place, with broadcasting).
//! [`unary_fn`] and [`binary_fn`] are the only places that name the functions, so every loop
//! computes the same thing; each loop is monomorphised per function, so the function inlines.

use std::cmp::Ordering;

use tensorgraph_graph::{BinaryOp, UnaryOp};
use tensorgraph_kernels::Float;

/// A loop that runs a unary element function over its storage.
pub(crate) trait Map<T> {
    type Out;
    fn map<F: Fn(T) -> T + Copy + Send + Sync>(self, f: F) -> Self::Out;
}

/// A loop that runs a binary element function over its two operands.
pub(crate) trait Zip<T> {
    type Out;
    fn zip<F: Fn(T, T) -> T + Copy + Send + Sync>(self, f: F) -> Self::Out;
}

/// Runs `u`'s float element function through `m`.
pub(crate) fn unary_fn<T: Float, M: Map<T>>(u: UnaryOp, m: M) -> M::Out {
    let (zero, one) = (T::zero(), T::one());
    match u {
        // NaN passes through, as in TF (and so reaches the numerics check).
        UnaryOp::Relu => m.map(move |v| if v < zero { zero } else { v }),
        UnaryOp::Sigmoid => m.map(|v: T| v.sigmoid()),
        UnaryOp::Tanh => m.map(|v: T| v.hyperbolic_tangent()),
        UnaryOp::Exp => m.map(|v: T| v.exponential()),
        UnaryOp::Log => m.map(|v: T| v.ln()),
        UnaryOp::Log1p => m.map(|v: T| v.ln_1p()),
        UnaryOp::Erf => m.map(|v: T| v.error_function()),
        UnaryOp::Neg => m.map(|v: T| -v),
        UnaryOp::Square => m.map(|v| v * v),
        UnaryOp::Sqrt => m.map(|v: T| v.sqrt()),
        UnaryOp::Rsqrt => m.map(move |v: T| one / v.sqrt()),
        UnaryOp::Abs => m.map(|v: T| v.abs()),
        UnaryOp::Sign => m.map(move |v| {
            if v > zero {
                one
            } else if v < zero {
                -one
            } else {
                v // zero and NaN stay
            }
        }),
        UnaryOp::Reciprocal => m.map(move |v| one / v),
        UnaryOp::Elu => m.map(move |v: T| if v > zero { v } else { v.exp_m1() }),
        UnaryOp::Selu => {
            let (alpha, scale) = (T::of(UnaryOp::SELU_ALPHA), T::of(UnaryOp::SELU_SCALE));
            m.map(move |v: T| if v > zero { scale * v } else { scale * alpha * v.exp_m1() })
        }
        UnaryOp::Softplus => m.map(move |v: T| if v > zero { v + (-v).exp().ln_1p() } else { v.exp().ln_1p() }),
        UnaryOp::Softsign => m.map(move |v: T| v / (one + v.abs())),
        UnaryOp::Floor => m.map(|v: T| v.floor()),
        UnaryOp::LogicalNot => unreachable!("LogicalNot takes bools (inference refuses floats)"),
    }
}

/// Runs `b`'s float element function through `z`; `None` for the comparisons (see
/// [`comparison`]) and the logical ops (bools only).
pub(crate) fn binary_fn<T: Float, Z: Zip<T>>(b: BinaryOp, z: Z) -> Option<Z::Out> {
    let (zero, one) = (T::zero(), T::one());
    Some(match b {
        BinaryOp::Add => z.zip(|u, v| u + v),
        BinaryOp::Sub => z.zip(|u, v| u - v),
        BinaryOp::Mul => z.zip(|u, v| u * v),
        BinaryOp::Div => z.zip(|u, v| u / v),
        BinaryOp::Maximum => z.zip(|u, v| if u >= v { u } else { v }),
        BinaryOp::Minimum => z.zip(|u, v| if u <= v { u } else { v }),
        BinaryOp::Pow => z.zip(|u: T, v| u.powf(v)),
        BinaryOp::ReluGrad => z.zip(move |g, f| if f > zero { g } else { zero }),
        BinaryOp::SigmoidGrad => z.zip(move |s, d| d * s * (one - s)),
        BinaryOp::TanhGrad => z.zip(move |s, d| d * (one - s * s)),
        BinaryOp::Equal
        | BinaryOp::NotEqual
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual
        | BinaryOp::LogicalAnd
        | BinaryOp::LogicalOr => return None,
    })
}

/// A comparison as a test of `partial_cmp`'s answer (`None` when either side is NaN, which
/// only `NotEqual` accepts, as IEEE and TF); `None` for the arithmetic ops.
pub(crate) fn comparison(b: BinaryOp) -> Option<fn(Option<Ordering>) -> bool> {
    use Ordering::{Equal, Greater, Less};
    Some(match b {
        BinaryOp::Equal => |o| o == Some(Equal),
        BinaryOp::NotEqual => |o| o != Some(Equal),
        BinaryOp::Less => |o| o == Some(Less),
        BinaryOp::LessEqual => |o| matches!(o, Some(Less | Equal)),
        BinaryOp::Greater => |o| o == Some(Greater),
        BinaryOp::GreaterEqual => |o| matches!(o, Some(Greater | Equal)),
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Maximum
        | BinaryOp::Minimum
        | BinaryOp::Pow
        | BinaryOp::ReluGrad
        | BinaryOp::SigmoidGrad
        | BinaryOp::TanhGrad
        | BinaryOp::LogicalAnd
        | BinaryOp::LogicalOr => return None,
    })
}
