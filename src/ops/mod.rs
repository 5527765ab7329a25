//! The kernel library: one module per op family, each with its host launcher, its plain-loop
//! CPU reference (f64 accumulation, written to be read) and its tests side by side.

pub mod matmul;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Workgroups needed to cover `n` items with `per_group` items each.
pub(crate) fn groups_for(n: usize, per_group: usize) -> Result<u32> {
    let g = n.div_ceil(per_group);
    u32::try_from(g).map_err(|_| Error::Limit(format!("{n} items need {g} workgroups, beyond u32")))
}

/// u32 for a kernel parameter, or a clear error when a dimension is too large.
pub(crate) fn dim(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit(format!("{what} = {n} exceeds the 32-bit index range of the kernels")))
}

pub(crate) fn same_shape(a: &Tensor, b: &Tensor, op: &str) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::Shape(format!("{op}: shapes {:?} and {:?} differ", a.shape(), b.shape())));
    }
    Ok(())
}
