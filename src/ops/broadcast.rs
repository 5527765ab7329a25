//! NumPy broadcasting of shapes: the broadcast shape, an operand's strides within it, and the
//! contiguous blocks the element-wise kernels read without index arithmetic.

use crate::error::{Error, Result};

/// NumPy broadcast of two shapes (aligned at the right).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(Error::Shape(format!("cannot broadcast {a:?} with {b:?} (dimension {i}: {da} vs {db})"))),
        };
    }
    Ok(out)
}

/// Strides of `shape` aligned to `out` (0 where it broadcasts).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let mut strides = vec![0; r];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = i + r - shape.len();
        strides[o] = if shape[i] == 1 && out[o] != 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// The strides of a C-order array of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![0; shape.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        st[i] = s;
        s *= shape[i];
    }
    st
}

/// If `strides` read a contiguous block of the trailing dims, repeated over the leading ones
/// (zero strides there), the block's size.
pub(crate) fn trailing_block(strides: &[usize], shape: &[usize]) -> Option<usize> {
    let full = contiguous_strides(shape);
    let k = (0..=shape.len())
        .find(|&k| strides[k..].iter().zip(&full[k..]).all(|(a, b)| a == b) && strides[..k].iter().all(|&x| x == 0))?;
    let block: usize = shape[k..].iter().product();
    (block > 0).then_some(block)
}

/// If `strides` read a contiguous block of dims [k1, k2) (zero strides elsewhere), the block's
/// size and the number of elements of the dims after it: element i then reads
/// (i / inner) % block.
pub(crate) fn middle_block(strides: &[usize], shape: &[usize]) -> Option<(usize, usize)> {
    let r = shape.len();
    for k2 in (0..=r).rev() {
        if strides[k2..].iter().any(|&x| x != 0) {
            break;
        }
        let inner: usize = shape[k2..].iter().product();
        for k1 in (0..k2).rev() {
            let sub = &shape[k1..k2];
            let want = contiguous_strides(sub);
            if strides[k1..k2] == want[..] && strides[..k1].iter().all(|&x| x == 0) {
                let block: usize = sub.iter().product();
                return (block > 0 && inner > 0).then_some((block, inner));
            }
        }
    }
    None
}
