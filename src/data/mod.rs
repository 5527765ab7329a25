//! Data: 2-D toys, MNIST-style idx files, image folders, .npy arrays, and the seeded batcher
//! that feeds training (batch k is a function of (seed, k) only, so a resumed run sees the
//! same batches as an uninterrupted one).

pub mod files;
pub mod rng;
pub mod toy;

use crate::config::DataConfig;
use crate::error::{Error, Result};
use crate::score::process::Moments;
use rng::HostRng;
use std::path::{Path, PathBuf};
use toy::Toy;

pub enum Source {
    /// Fresh points every batch.
    Toy(Toy),
    /// A fixed set: [n, shape...] flattened.
    Array { n: usize, data: Vec<f32> },
}

pub struct Dataset {
    pub source: Source,
    /// Shape of one sample.
    pub shape: Vec<usize>,
    /// Pixel data in [-1, 1] (8-bit images): enables bits/dim and image grids.
    pub images: bool,
    /// Mean per dimension and variance (exact for toys with an analytic mixture, else measured
    /// on up to 20,000 samples), computed once at load: they set the sampling prior.
    pub moments: Moments,
}

impl Dataset {
    /// Load what `cfg` names; relative paths are taken from `base` (the config's folder) when
    /// they do not exist as given.
    pub fn load(cfg: &DataConfig, base: &Path) -> Result<Dataset> {
        let mut d = Self::load_raw(cfg, base)?;
        d.moments = d.measure_moments();
        Ok(d)
    }

    fn load_raw(cfg: &DataConfig, base: &Path) -> Result<Dataset> {
        let path = || -> Result<PathBuf> {
            let p = cfg
                .path
                .as_ref()
                .ok_or_else(|| Error::Invalid(format!("data.source = '{}' needs data.path = \"...\"", cfg.source)))?;
            let p = PathBuf::from(p);
            Ok(if p.exists() || p.is_absolute() { p } else { base.join(&p) })
        };
        match cfg.source.as_str() {
            "toy" => {
                let name = cfg.name.as_deref().unwrap_or("ring8");
                Ok(Dataset {
                    source: Source::Toy(Toy::from_name(name)?),
                    shape: vec![2],
                    images: false,
                    moments: Moments::centred(0, 0.0),
                })
            }
            "idx" => {
                let (n, shape, data) = files::idx_images(&path()?, cfg.limit)?;
                Ok(Dataset {
                    source: Source::Array { n, data },
                    shape,
                    images: true,
                    moments: Moments::centred(0, 0.0),
                })
            }
            "images" => {
                let size = cfg.size.unwrap_or(32);
                let ch = cfg.channels.unwrap_or(3);
                if ch != 1 && ch != 3 {
                    return Err(Error::Invalid(format!("data.channels = {ch}: use 1 or 3")));
                }
                let (n, data) = files::image_folder(&path()?, size, ch, cfg.limit)?;
                Ok(Dataset {
                    source: Source::Array { n, data },
                    shape: vec![ch, size, size],
                    images: true,
                    moments: Moments::centred(0, 0.0),
                })
            }
            "npy" => {
                let p = path()?;
                let (shape, mut data) = files::read_npy(&p)?;
                if shape.len() < 2 || shape[0] == 0 {
                    return Err(Error::Invalid(format!("{}: need [N, ...] with N >= 1, got {shape:?}", p.display())));
                }
                let n = cfg.limit.unwrap_or(shape[0]).min(shape[0]);
                data.truncate(n * shape[1..].iter().product::<usize>());
                Ok(Dataset {
                    source: Source::Array { n, data },
                    shape: shape[1..].to_vec(),
                    images: false,
                    moments: Moments::centred(0, 0.0),
                })
            }
            s => Err(Error::Invalid(format!("data.source = '{s}': use toy, idx, images or npy"))),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of stored samples (None for toys, which are infinite).
    pub fn len(&self) -> Option<usize> {
        match &self.source {
            Source::Toy(_) => None,
            Source::Array { n, .. } => Some(*n),
        }
    }

    fn measure_moments(&self) -> Moments {
        if let Source::Toy(t) = &self.source {
            if let Some(g) = t.gmm() {
                return g.moments();
            }
        }
        match &self.source {
            Source::Array { n, data } if *n <= 20000 => Moments::of(data, self.numel()),
            _ => Moments::of(&self.draw(20000, &mut HostRng::new(0x5EC0_0D)), self.numel()),
        }
    }

    /// n samples drawn with `rng` (toys: fresh; arrays: uniformly with replacement).
    pub fn draw(&self, n: usize, rng: &mut HostRng) -> Vec<f32> {
        match &self.source {
            Source::Toy(t) => t.sample(n, rng),
            Source::Array { n: m, data } => {
                let d = self.numel();
                (0..n).flat_map(|_| data[rng.below(*m) * d..][..d].iter().copied()).collect::<Vec<_>>()
            }
        }
    }
}

/// Training batches: batch k of size b is a function of (seed, k); arrays are visited epoch by
/// epoch in a seeded random order.
pub struct Batcher<'d> {
    data: &'d Dataset,
    seed: u64,
    b: usize,
    perm: Option<(u64, Vec<u32>)>,
}

impl<'d> Batcher<'d> {
    pub fn new(data: &'d Dataset, seed: u64, b: usize) -> Self {
        Batcher { data, seed, b, perm: None }
    }

    fn epoch_perm(&mut self, e: u64, n: usize) -> &[u32] {
        if self.perm.as_ref().map(|p| p.0) != Some(e) {
            let mut p: Vec<u32> = (0..n as u32).collect();
            HostRng::new(self.seed ^ 0xE90C_0000_0000 ^ e.wrapping_mul(0x9E37_79B9)).shuffle(&mut p);
            self.perm = Some((e, p));
        }
        &self.perm.as_ref().unwrap().1
    }

    /// Batch k: samples [b * D] and a host generator for this batch's other draws (noise levels).
    pub fn batch(&mut self, k: u64) -> (Vec<f32>, HostRng) {
        let mut rng = HostRng::new(self.seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let b = self.b;
        let x = match &self.data.source {
            Source::Toy(t) => t.sample(b, &mut rng),
            Source::Array { n, data } => {
                let (n, d) = (*n, self.data.numel());
                let mut out = Vec::with_capacity(b * d);
                for i in 0..b {
                    let pos = k * b as u64 + i as u64;
                    let idx = self.epoch_perm(pos / n as u64, n)[(pos % n as u64) as usize] as usize;
                    out.extend_from_slice(&data[idx * d..(idx + 1) * d]);
                }
                out
            }
        };
        (x, rng)
    }
}
