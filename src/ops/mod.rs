//! The kernel library: one module per op family, each with its host launcher, its plain-loop
//! CPU reference (f64 accumulation, written to be read) and its tests side by side.

pub mod attention;
pub mod broadcast;
pub mod conv;
pub mod elementwise;
pub mod embedding;
pub mod kernels;
pub mod knn;
pub mod layout;
pub mod matmul;
mod matmul_config;
pub mod norm;
pub mod random;
pub mod reduce;

use crate::error::{Error, Result};

/// Workgroups needed to cover `n` items with `per_group` items each.
pub(crate) fn groups_for(n: usize, per_group: usize) -> Result<u32> {
    let g = n.div_ceil(per_group);
    u32::try_from(g).map_err(|_| Error::Limit(format!("{n} items need {g} workgroups, beyond u32")))
}

/// u32 for a kernel parameter, or a clear error when a dimension is too large.
pub(crate) fn dim(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit(format!("{what} = {n} exceeds the 32-bit index range of the kernels")))
}

/// Folded grid for `n` items at `per_group` items per workgroup.
pub(crate) fn grid(rec: &crate::gpu::Recorder, n: usize, per_group: usize) -> Result<[u32; 3]> {
    crate::gpu::fold_groups(groups_for(n, per_group)?, rec.gpu.max_groups_per_dim())
}

/// Most loop iterations a kernel lets one invocation run, all its loops together. llvmpipe
/// (lavapipe) ends every loop of an invocation, silently, once they have run 65,535 iterations
/// in all (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS); kernels whose invocations walk a long axis
/// split it, take a path that spreads it over a workgroup, or refuse past this bound.
pub const MAX_LOOP: usize = 60_000;

/// An error where one invocation of `what` would loop `iterations` times on a CPU adapter.
pub(crate) fn loop_guard(rec: &crate::gpu::Recorder, iterations: usize, what: impl FnOnce() -> String) -> Result<()> {
    if rec.gpu.is_cpu() && iterations > MAX_LOOP {
        return Err(Error::Limit(format!(
            "{}: one invocation would loop {iterations} times, and lavapipe ends an invocation's loops after \
             65,535; on this CPU adapter make that axis shorter (or run on a GPU)",
            what()
        )));
    }
    Ok(())
}

/// MAX_LOOP on a CPU adapter, unbounded elsewhere (GPU drivers do not cut loops short).
pub(crate) fn loop_budget(rec: &crate::gpu::Recorder) -> usize {
    if rec.gpu.is_cpu() {
        MAX_LOOP
    } else {
        usize::MAX
    }
}
