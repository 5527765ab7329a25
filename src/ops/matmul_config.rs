//! Matmul tile configurations (one per kernel family, every field a pipeline constant), the
//! candidates the per-adapter autotune times, and the autotune with its on-disk cache.

use super::matmul::{matmul, MatmulOpts};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder};
use crate::tensor::Tensor;

/// The matmul kernel families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Register blocking, no workgroup memory (`mm_reg4` when B is row-major with N % 4 == 0,
    /// else `mm_reg`).
    Reg,
    /// Workgroup-memory tiles (`mm_tiled`).
    Tiled,
    /// Register blocking with A rows shared by subgroup shuffles (`mm_sg`); needs SUBGROUP
    /// and subgroups of >= 8 invocations. Layouts it does not cover fall back to `mm_reg`.
    Subgroup,
}

/// One tile configuration; every field is a pipeline specialisation constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulConfig {
    /// The kernel family.
    pub family: Family,
    /// Workgroup width.
    pub wg_x: u32,
    /// Workgroup height.
    pub wg_y: u32,
    /// Rows per invocation.
    pub tm: u32,
    /// Columns per invocation (a multiple of 4 for `Reg`).
    pub tn: u32,
    /// k-slice depth (`Tiled` only).
    pub bk: u32,
}

impl MatmulConfig {
    /// A register-blocked configuration.
    pub const fn reg(wg_x: u32, wg_y: u32, tm: u32, tn: u32) -> Self {
        MatmulConfig { family: Family::Reg, wg_x, wg_y, tm, tn, bk: 0 }
    }
    /// A subgroup configuration.
    pub const fn sg(wg_y: u32, tm: u32) -> Self {
        MatmulConfig { family: Family::Subgroup, wg_x: 8, wg_y, tm, tn: 16, bk: 0 }
    }
    /// A workgroup-memory tiled configuration.
    pub const fn tiled(wg_x: u32, wg_y: u32, tm: u32, tn: u32, bk: u32) -> Self {
        MatmulConfig { family: Family::Tiled, wg_x, wg_y, tm, tn, bk }
    }
    /// The same with no more invocation rows per workgroup than `m` output rows need.
    pub fn fit_rows(&self, m: usize) -> Self {
        let rows = (m as u32).div_ceil(self.tm).max(1);
        MatmulConfig { wg_y: self.wg_y.min(rows), ..*self }
    }
    /// The subgroup family where one invocation's rows cover all `m`: only as many rows per
    /// invocation as m needs, in whole row groups of 8 (a 16-channel convolution no longer
    /// computes 32 rows and throws 16 away); then `fit_rows`. Other families, or m over `tm`:
    /// `fit_rows`.
    pub fn fit_rows_sg(&self, m: usize) -> Self {
        if self.family != Family::Subgroup || m as u32 > self.tm {
            return self.fit_rows(m);
        }
        MatmulConfig { tm: (m as u32).next_multiple_of(8).max(8), ..*self }.fit_rows(m)
    }
    /// Output rows and columns covered by one workgroup.
    pub fn tile(&self) -> (u32, u32) {
        (self.wg_y * self.tm, self.wg_x * self.tn)
    }

    /// Compact text form, e.g. `reg:8x8:4x8` or `tiled:16x16:4x4:8` (also `SCOREGEN_MATMUL`).
    pub fn name(&self) -> String {
        match self.family {
            Family::Reg => format!("reg:{}x{}:{}x{}", self.wg_x, self.wg_y, self.tm, self.tn),
            Family::Tiled => format!("tiled:{}x{}:{}x{}:{}", self.wg_x, self.wg_y, self.tm, self.tn, self.bk),
            Family::Subgroup => format!("sg:{}x{}:{}x{}", self.wg_x, self.wg_y, self.tm, self.tn),
        }
    }

    /// Parse the name `name` prints (`SCOREGEN_MATMUL`, the tune cache).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!("matmul config '{s}' is not like reg:8x8:16x16, sg:8x4:32x16 or tiled:16x16:8x8:8"))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let pair = |t: &str| -> Result<(u32, u32)> {
            let (x, y) = t.split_once('x').ok_or_else(bad)?;
            Ok((x.parse().map_err(|_| bad())?, y.parse().map_err(|_| bad())?))
        };
        let cfg = match parts.as_slice() {
            ["reg", wg, t] => {
                let ((wx, wy), (tm, tn)) = (pair(wg)?, pair(t)?);
                MatmulConfig::reg(wx, wy, tm, tn)
            }
            ["sg", wg, t] => {
                let ((wx, wy), (tm, tn)) = (pair(wg)?, pair(t)?);
                if wx != 8 || tn != 16 {
                    return Err(bad());
                }
                MatmulConfig::sg(wy, tm)
            }
            ["tiled", wg, t, bk] => {
                let ((wx, wy), (tm, tn)) = (pair(wg)?, pair(t)?);
                MatmulConfig::tiled(wx, wy, tm, tn, bk.parse().map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Respect the shader's register-array bounds and the workgroup-memory tiles.
    pub fn validate(&self) -> Result<()> {
        let ok = self.wg_x >= 1
            && self.wg_y >= 1
            && match self.family {
                Family::Reg => {
                    self.tm >= 1 && self.tm <= 16 && self.tn.is_multiple_of(4) && self.tn >= 4 && self.tn <= 16
                }
                Family::Subgroup => {
                    self.wg_x == 8 && self.tn == 16 && self.tm.is_multiple_of(8) && self.tm >= 8 && self.tm <= 32
                }
                Family::Tiled => {
                    let (bm, bn) = self.tile();
                    self.tm >= 1
                        && self.tm <= 8
                        && self.tn >= 1
                        && self.tn <= 8
                        && self.tm * self.tn <= 64
                        && self.bk >= 1
                        && self.bk <= 16
                        && self.bk * bm <= 2048
                        && self.bk * bn <= 2048
                }
            };
        if !ok {
            return Err(Error::Invalid(format!("matmul config {} is outside the kernel's bounds", self.name())));
        }
        Ok(())
    }

    /// Can this adapter run it (workgroup size, workgroup memory, subgroups)?
    pub fn fits(&self, gpu: &Gpu) -> bool {
        let inv = self.wg_x * self.wg_y;
        inv <= gpu.limits.max_compute_invocations_per_workgroup
            && self.wg_x <= gpu.limits.max_compute_workgroup_size_x
            && self.wg_y <= gpu.limits.max_compute_workgroup_size_y
            && (self.family != Family::Tiled || gpu.limits.max_compute_workgroup_storage_size >= 2 * 2048 * 4)
            && (self.family != Family::Subgroup
                || (gpu.features.contains(wgpu::Features::SUBGROUP) && gpu.info.subgroup_min_size >= 8))
    }
}

/// Candidates the autotune tries, both families, so that CPU and GPU adapters each find theirs.
pub const CANDIDATES: &[MatmulConfig] = &[
    MatmulConfig::sg(4, 32),
    MatmulConfig::sg(8, 16),
    MatmulConfig::reg(8, 8, 16, 16),
    MatmulConfig::reg(8, 8, 8, 16),
    MatmulConfig::reg(16, 4, 4, 8),
    MatmulConfig::tiled(16, 16, 4, 4, 8),
    MatmulConfig::tiled(16, 16, 8, 8, 8),
    MatmulConfig::tiled(16, 8, 8, 8, 16),
];

/// Tuned tile configurations of an adapter: one for small products (a 512^3 product), where
/// filling the device with workgroups matters most, and one for large ones (2048^3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunedMatmul {
    /// For small products.
    pub small: MatmulConfig,
    /// For large ones.
    pub large: MatmulConfig,
}

/// Products with fewer outputs than this (batch * m * n) use the small configuration.
pub const SMALL_OUTPUTS: usize = 1 << 20;

impl TunedMatmul {
    /// The configuration for a product of `outputs` values; a batch-invariant recording (see
    /// `Recorder::batch_invariant`) always takes `large`, so its results do not change with size.
    pub fn for_recording(&self, rec: &crate::gpu::Recorder, outputs: usize) -> MatmulConfig {
        if rec.batch_invariant {
            self.large
        } else {
            self.for_outputs(outputs)
        }
    }
    /// The configuration for a product of this many outputs.
    pub fn for_outputs(&self, outputs: usize) -> MatmulConfig {
        if outputs < SMALL_OUTPUTS {
            self.small
        } else {
            self.large
        }
    }
    /// The configuration's name.
    pub fn name(&self) -> String {
        if self.small == self.large {
            self.large.name()
        } else {
            format!("{},{}", self.small.name(), self.large.name())
        }
    }
    fn parse(s: &str) -> Result<Self> {
        let (a, b) = s.split_once(',').unwrap_or((s, s));
        Ok(TunedMatmul { small: MatmulConfig::parse(a)?, large: MatmulConfig::parse(b)? })
    }
}

/// The tile configurations for this adapter: `SCOREGEN_MATMUL` if set (one config, or
/// `small,large`), else the cached autotune result, else a fresh autotune (cached).
pub fn tuned_config(gpu: &Gpu) -> TunedMatmul {
    gpu.tuned.get_or_init("matmul", || {
        if let Ok(s) = std::env::var("SCOREGEN_MATMUL") {
            match TunedMatmul::parse(&s) {
                Ok(c) if c.small.fits(gpu) && c.large.fits(gpu) => return c,
                _ => eprintln!("warning: SCOREGEN_MATMUL='{s}' ignored (expected e.g. sg:8x4:32x16 or tiled:16x16:4x4:8,tiled:16x16:8x8:8, fitting this adapter)"),
            }
        }
        let key = crate::gpu::tune::adapter_key(gpu);
        if let Some(c) = crate::gpu::tune::load("matmul", &key).and_then(|s| TunedMatmul::parse(&s).ok()) {
            if c.small.fits(gpu) && c.large.fits(gpu) {
                return c;
            }
        }
        let best = autotune(gpu).unwrap_or(TunedMatmul { small: CANDIDATES[2], large: CANDIDATES[2] });
        crate::gpu::tune::store("matmul", &key, &best.name());
        best
    })
}

/// Time every candidate that fits on a 512^3 product: the fastest is the small configuration.
/// When it takes under 5 ms (a real GPU), time the best four again at 2048^3, where launch
/// overhead no longer hides the differences, for the large one; otherwise (a CPU adapter,
/// where 512 is already compute-bound) the same serves both. A second or two on a CPU adapter,
/// well under a second on a GPU.
pub fn autotune(gpu: &Gpu) -> Result<TunedMatmul> {
    let time_at = |n: usize, cands: &[MatmulConfig]| -> Result<Vec<(f64, MatmulConfig)>> {
        let data: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let a = Tensor::from_slice(gpu, &data, &[n, n])?;
        let b = Tensor::from_slice(gpu, &data, &[n, n])?;
        let run = |cfg: MatmulConfig| -> Result<f64> {
            let o = MatmulOpts { config: Some(cfg), ..Default::default() };
            let t = std::time::Instant::now();
            let mut rec = Recorder::new(gpu);
            let _c = matmul(&mut rec, &a, &b, o)?;
            rec.finish()?;
            Ok(t.elapsed().as_secs_f64())
        };
        // Warm-up (pipeline build) first; a configuration that fails to build is skipped.
        let mut out: Vec<(f64, MatmulConfig)> =
            cands.iter().filter(|c| run(**c).is_ok()).map(|c| (f64::INFINITY, *c)).collect();
        // Best of four, the candidates taking turns: a burst of other work on the machine (a
        // test suite running beside the first autotune) then slows every candidate alike
        // instead of sinking one (docs/performance.md, "best of four").
        for _ in 0..4 {
            for (best, cfg) in out.iter_mut() {
                *best = best.min(run(*cfg)?);
            }
        }
        out.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap());
        Ok(out)
    };
    let fitting: Vec<MatmulConfig> = CANDIDATES.iter().copied().filter(|c| c.fits(gpu)).collect();
    let small_rank = time_at(512, &fitting)?;
    let small = small_rank
        .first()
        .map(|r| r.1)
        .ok_or_else(|| Error::Gpu("no matmul configuration runs on this adapter".into()))?;
    let mut large = small;
    if small_rank[0].0 < 5e-3 {
        let top: Vec<MatmulConfig> = small_rank.iter().take(4).map(|r| r.1).collect();
        large = time_at(2048, &top)?.first().map(|r| r.1).unwrap_or(small);
    }
    Ok(TunedMatmul { small, large })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subgroup_rows_fit_small_m() {
        let sg = MatmulConfig::sg(4, 32);
        // One invocation row covers m: whole groups of 8, one invocation row per workgroup.
        for (m, tm) in [(1, 8), (8, 8), (9, 16), (16, 16), (17, 24), (32, 32)] {
            let c = sg.fit_rows_sg(m);
            assert_eq!((c.tm, c.wg_y), (tm, 1), "m = {m}");
        }
        // Larger m keeps the rows per invocation; other families are fit_rows alone.
        assert_eq!(sg.fit_rows_sg(40), sg.fit_rows(40));
        assert_eq!(sg.fit_rows_sg(200), sg);
        let reg = MatmulConfig::reg(8, 8, 8, 16);
        assert_eq!(reg.fit_rows_sg(3), reg.fit_rows(3));
    }
}
