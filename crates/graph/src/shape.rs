//! Static shapes with possibly unknown dimensions, as TensorFlow's `TensorShape`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One dimension: `Some(n)` when known at graph-building time, `None` (printed `?`) otherwise.
pub type Dim = Option<usize>;

/// A static shape of known rank whose dimensions may be unknown, like `[?, 784]`.
///
/// ```
/// use tensorgraph_graph::Shape;
/// let s = Shape::from([None, Some(784)]);
/// assert_eq!(s.to_string(), "[?,784]");
/// assert!(s.is_compatible_with(&[50, 784]));
/// assert!(!s.is_compatible_with(&[50, 785]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// The shape of a scalar, `[]`.
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// A fully known shape.
    pub fn known(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Some(d)).collect())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// Dimension `i`; `None` if unknown or out of range.
    pub fn dim(&self, i: usize) -> Dim {
        self.0.get(i).copied().flatten()
    }

    /// True when every dimension is known.
    pub fn is_fully_defined(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }

    /// The dimensions if all are known.
    pub fn to_vec(&self) -> Option<Vec<usize>> {
        self.0.iter().copied().collect()
    }

    /// Number of elements if all dimensions are known (and their product fits a usize).
    pub fn num_elements(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, d| d.and_then(|d| acc.checked_mul(d)))
    }

    /// True when a concrete shape fits this static shape.
    pub fn is_compatible_with(&self, concrete: &[usize]) -> bool {
        self.rank() == concrete.len() && self.0.iter().zip(concrete).all(|(d, &c)| d.is_none_or(|d| d == c))
    }

    /// The most specific shape compatible with both, or `None` if they conflict.
    pub fn merge(&self, other: &Shape) -> Option<Shape> {
        if self.rank() != other.rank() {
            return None;
        }
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| match (a, b) {
                (Some(x), Some(y)) if x != y => Err(()),
                (Some(x), _) | (_, Some(x)) => Ok(Some(*x)),
                (None, None) => Ok(None),
            })
            .collect::<Result<Vec<_>, ()>>()
            .ok()
            .map(Shape)
    }

    /// NumPy broadcasting of two static shapes; `None` if they cannot broadcast.
    ///
    /// An unknown dimension against a known `n > 1` gives `n` (it must be 1 or `n` at run time).
    /// ```
    /// use tensorgraph_graph::Shape;
    /// let a = Shape::from([None, Some(300)]);
    /// let b = Shape::known(&[300]);
    /// assert_eq!(a.broadcast(&b).unwrap().to_string(), "[?,300]");
    /// assert!(Shape::known(&[2, 3]).broadcast(&Shape::known(&[4])).is_none());
    /// ```
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let pad = |s: &Shape, i: usize| -> Dim {
            let offset = rank - s.rank();
            if i < offset {
                Some(1)
            } else {
                s.0[i - offset]
            }
        };
        (0..rank)
            .map(|i| match (pad(self, i), pad(other, i)) {
                (Some(1), d) | (d, Some(1)) => Some(d),
                (Some(a), Some(b)) if a == b => Some(Some(a)),
                (Some(_), Some(_)) => None,
                (None, Some(n)) | (Some(n), None) => Some(Some(n)),
                (None, None) => Some(None),
            })
            .collect::<Option<Vec<_>>>()
            .map(Shape)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match d {
                Some(n) => write!(f, "{n}")?,
                None => f.write_str("?")?,
            }
        }
        f.write_str("]")
    }
}

impl<const N: usize> From<[Option<usize>; N]> for Shape {
    fn from(d: [Option<usize>; N]) -> Shape {
        Shape(d.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape::known(&d)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape::known(d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape::known(&d)
    }
}

impl From<Vec<Dim>> for Shape {
    fn from(d: Vec<Dim>) -> Shape {
        Shape(d)
    }
}

/// Formats a concrete shape the way [`Shape`] prints: `[50,784]`.
pub fn fmt_dims(dims: &[usize]) -> String {
    Shape::known(dims).to_string()
}
