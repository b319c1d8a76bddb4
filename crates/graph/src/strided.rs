//! TF's strided slicing (`x[:, -1]`, `x[..., 0]`, `x[::-1]`, `x[:, None]`): the op's static
//! spec as TF's `StridedSlice` attributes, and its resolution against a shape (negative
//! indices, masks, clamping) into one plain `(start, len, step)` per input dimension.

use serde::{Deserialize, Serialize};

/// One entry of a Python-style index (`x[a, b:c:d, ..., None]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// `:`: the whole dimension.
    All,
    /// `i` (negative from the end): that position; the dimension is dropped.
    At(i64),
    /// `start:end:step` (each bound optional, negative from the end; step not 0, negative walks
    /// backwards).
    Range(Option<i64>, Option<i64>, i64),
    /// `None` / `tf.newaxis`: a new dimension of size 1.
    NewAxis,
    /// `...`: as many whole dimensions as the other entries leave.
    Ellipsis,
}

/// TF's `StridedSlice` attributes: `begin`, `end` and `strides` (TF's inputs, held here) and
/// the five bit masks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SliceSpec {
    pub begin: Vec<i64>,
    pub end: Vec<i64>,
    pub strides: Vec<i64>,
    pub begin_mask: i64,
    pub end_mask: i64,
    pub ellipsis_mask: i64,
    pub new_axis_mask: i64,
    pub shrink_axis_mask: i64,
}

/// One input dimension's part of a resolved slice: `len` elements from `start`, `step` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DimSlice {
    pub start: usize,
    pub len: usize,
    pub step: isize,
}

impl SliceSpec {
    /// The spec of a Python-style index, as TF's `__getitem__` builds it.
    pub fn from_indices(indices: &[Index]) -> SliceSpec {
        let mut s = SliceSpec {
            begin: vec![],
            end: vec![],
            strides: vec![],
            begin_mask: 0,
            end_mask: 0,
            ellipsis_mask: 0,
            new_axis_mask: 0,
            shrink_axis_mask: 0,
        };
        for (k, ix) in indices.iter().enumerate() {
            // Entries past the masks' 64 bits keep no mask bits; `resolve` refuses them.
            let bit = if k < 64 { 1i64 << k } else { 0 };
            let (b, e, st) = match *ix {
                Index::All => {
                    s.begin_mask |= bit;
                    s.end_mask |= bit;
                    (0, 0, 1)
                }
                Index::At(i) => {
                    s.shrink_axis_mask |= bit;
                    (i, i.wrapping_add(1), 1)
                }
                Index::Range(b, e, st) => {
                    if b.is_none() {
                        s.begin_mask |= bit;
                    }
                    if e.is_none() {
                        s.end_mask |= bit;
                    }
                    (b.unwrap_or(0), e.unwrap_or(0), st)
                }
                Index::NewAxis => {
                    s.new_axis_mask |= bit;
                    (0, 0, 1)
                }
                Index::Ellipsis => {
                    s.ellipsis_mask |= bit;
                    (0, 0, 1)
                }
            };
            s.begin.push(b);
            s.end.push(e);
            s.strides.push(st);
        }
        s
    }

    /// The slice of an input of shape `dims` (unknown sizes `None`): per input dimension its
    /// part (`None` where the size is unknown and the part depends on it), and the output's
    /// dimensions. An error says what does not fit.
    #[allow(clippy::type_complexity)]
    pub fn resolve(&self, dims: &[Option<usize>]) -> Result<(Vec<Option<DimSlice>>, Vec<Option<usize>>), String> {
        let n = self.begin.len();
        if n > 64 {
            return Err(format!("{n} indices: the masks hold 64"));
        }
        if self.end.len() != n || self.strides.len() != n {
            return Err(format!(
                "begin, end and strides differ in length: {}, {}, {}",
                n,
                self.end.len(),
                self.strides.len()
            ));
        }
        let bit = |mask: i64, k: usize| k < 64 && (mask >> k) & 1 == 1;
        if (0..n).filter(|&k| bit(self.ellipsis_mask, k)).count() > 1 {
            return Err("more than one ellipsis".into());
        }
        // Entries that consume an input dimension (all but new axes and the ellipsis).
        let consuming = (0..n).filter(|&k| !bit(self.ellipsis_mask, k) && !bit(self.new_axis_mask, k)).count();
        let rank = dims.len();
        if consuming > rank {
            return Err(format!("{consuming} indices for a tensor of rank {rank}"));
        }
        let mut parts = Vec::with_capacity(rank);
        let mut out = Vec::new();
        let whole = |d: Option<usize>, parts: &mut Vec<Option<DimSlice>>, out: &mut Vec<Option<usize>>| {
            parts.push(d.map(|len| DimSlice { start: 0, len, step: 1 }));
            out.push(d);
        };
        let mut axis = 0;
        let mut saw_ellipsis = false;
        for k in 0..n {
            if bit(self.ellipsis_mask, k) {
                saw_ellipsis = true;
                for _ in 0..rank - consuming {
                    whole(dims[axis], &mut parts, &mut out);
                    axis += 1;
                }
                continue;
            }
            if bit(self.new_axis_mask, k) {
                out.push(Some(1));
                continue;
            }
            let d = dims[axis];
            axis += 1;
            let (b, e, s) = (self.begin[k], self.end[k], self.strides[k]);
            if bit(self.shrink_axis_mask, k) {
                let Some(d) = d else {
                    parts.push(None);
                    continue;
                };
                let i = if b < 0 { b + d as i64 } else { b };
                if !(0..d as i64).contains(&i) {
                    return Err(format!("index {b} is out of bounds for a dimension of size {d}"));
                }
                parts.push(Some(DimSlice { start: i as usize, len: 1, step: 1 }));
                continue;
            }
            if s == 0 || s == i64::MIN {
                return Err(format!("a stride of {s}"));
            }
            let Some(d) = d else {
                parts.push(None);
                out.push(None);
                continue;
            };
            let di = d as i64;
            let (lo, hi) = if s > 0 { (0, di) } else { (-1, di - 1) };
            let bound = |v: i64, masked: bool, default: i64| {
                if masked {
                    default
                } else {
                    (if v < 0 { v + di } else { v }).clamp(lo, hi)
                }
            };
            let start = bound(b, bit(self.begin_mask, k), if s > 0 { 0 } else { di - 1 });
            let stop = bound(e, bit(self.end_mask, k), if s > 0 { di } else { -1 });
            let span = if s > 0 { stop - start } else { start - stop };
            let len = if span <= 0 { 0 } else { (span + s.abs() - 1) / s.abs() };
            let start = if len == 0 { 0 } else { start as usize };
            parts.push(Some(DimSlice { start, len: len as usize, step: s as isize }));
            out.push(Some(len as usize));
        }
        // Without an ellipsis the remaining dimensions are taken whole (an implicit one at the end).
        if !saw_ellipsis {
            while axis < rank {
                whole(dims[axis], &mut parts, &mut out);
                axis += 1;
            }
        }
        Ok((parts, out))
    }
}
