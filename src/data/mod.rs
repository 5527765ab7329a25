//! Data: 2-D toys, MNIST-style idx files, image folders, .npy arrays, and the seeded batcher
//! that feeds training (batch k is a function of (seed, k) only, so a resumed run sees the
//! same batches as an uninterrupted one).

pub mod files;
pub mod labels;
pub mod toy;

use crate::dist::Moments;
use crate::error::{Error, Result};
use crate::rng::{HostRng, Stream};
pub use labels::Labels;
use std::path::{Path, PathBuf};
use toy::Toy;

/// Where the data come from (`data.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A 2-D toy (`name`), fresh points every batch.
    Toy,
    /// An MNIST-style idx images file at `path` (.gz or not).
    Idx,
    /// A folder of PNG/JPEG images at `path`, resized to `size`.
    Images,
    /// A numeric .npy array at `path` (float32 as is; float64 and integers converted with a
    /// note), first axis = samples.
    Npy,
}

impl SourceKind {
    /// The name configs use.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Toy => "toy",
            SourceKind::Idx => "idx",
            SourceKind::Images => "images",
            SourceKind::Npy => "npy",
        }
    }
}

/// The `[data]` table of a run's config.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Where the data come from: toy, idx, images or npy.
    pub source: SourceKind,
    /// Toy: ring8 (default), moons, swissroll, checkerboard, rings, ncsn, and Du et al.'s du-ring,
    /// du-bar, du-bar-left, du-bar-right, du-box-outer, du-box-inner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Toy>,
    /// idx, images, npy: the file or folder (relative paths from the config's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// images: the side the images are resized to (square; default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// images: 1 (grey) or 3 (RGB, default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// idx, images, npy: use only the first N samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// idx, npy: the class labels, an idx label file (MNIST's train-labels-idx1-ubyte.gz) or an
    /// integer .npy [N]. (Image folders take their classes from their subfolders, the mixture
    /// toys from their components.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

impl DataConfig {
    /// Keys a source does not use are refused by name; values are checked where the file is
    /// not needed.
    pub fn check(&self) -> std::result::Result<(), String> {
        let src = self.source;
        let only = |key: &str, given: bool, ok: &[SourceKind]| -> std::result::Result<(), String> {
            if given && !ok.contains(&src) {
                let users: Vec<&str> = ok.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "data.{key}: data.source = '{}' does not use it (only {} does); remove the key",
                    src.name(),
                    users.join(", ")
                ));
            }
            Ok(())
        };
        use SourceKind::*;
        only("name", self.name.is_some(), &[Toy])?;
        only("path", self.path.is_some(), &[Idx, Images, Npy])?;
        only("size", self.size.is_some(), &[Images])?;
        only("channels", self.channels.is_some(), &[Images])?;
        only("limit", self.limit.is_some(), &[Idx, Images, Npy])?;
        only("labels", self.labels.is_some(), &[Idx, Npy])?;
        if src != Toy && self.path.is_none() {
            return Err(format!("data.source = '{}' needs data.path = \"...\"", src.name()));
        }
        if self.limit == Some(0) {
            return Err("data.limit = 0 must be at least 1 (leave it out for the whole set)".into());
        }
        if let Some(size) = self.size.filter(|s| !(1..=4096).contains(s)) {
            return Err(format!("data.size = {size}: use 1 to 4096 pixels"));
        }
        if let Some(ch) = self.channels.filter(|c| *c != 1 && *c != 3) {
            return Err(format!("data.channels = {ch}: use 1 or 3"));
        }
        Ok(())
    }
}

/// The samples a data set holds.
pub enum Source {
    /// Fresh points every batch.
    Toy(Toy),
    /// A fixed set: [n, shape...] flattened.
    /// A fixed set.
    Array {
        /// Samples.
        n: usize,
        /// Their values, [n, shape...] flattened.
        data: Vec<f32>,
    },
}

/// A loaded data set: its samples, their shape, moments and labels.
pub struct Dataset {
    /// The samples.
    pub source: Source,
    /// Shape of one sample.
    pub shape: Vec<usize>,
    /// Pixel data in [-1, 1] (8-bit images): enables bits/dim and image grids.
    pub images: bool,
    /// Mean per dimension and variance (exact for toys with an analytic mixture, else measured
    /// on up to 20,000 samples), computed once at load: they set the sampling prior.
    pub moments: Moments,
    /// Class labels where the data have them (stored sets: one per sample; toys: the names of
    /// their components, the labels drawn with the points).
    pub labels: Option<Labels>,
}

impl Dataset {
    /// For 2-D data, `n` points to draw beside samples, titled: fresh draws of a toy (`seed`), or
    /// the first `n` rows of a stored set. None for other shapes.
    pub fn reference(&self, n: usize, seed: u64) -> Option<(String, Vec<f32>)> {
        if self.shape != [2] {
            return None;
        }
        Some(match &self.source {
            Source::Toy(t) => (format!("data: {} (fresh draws)", t.name()), t.sample(n, &mut HostRng::new(seed))),
            Source::Array { n: m, data } => {
                (format!("data (first {} of {m})", n.min(*m)), data[..2 * n.min(*m)].to_vec())
            }
        })
    }

    /// Load what `cfg` names; relative paths are taken from `base` (the config's folder) when
    /// they do not exist as given.
    pub fn load(cfg: &DataConfig, base: &Path) -> Result<Dataset> {
        let mut d = Self::load_raw(cfg, base)?;
        d.moments = d.measure_moments();
        Ok(d)
    }

    fn load_raw(cfg: &DataConfig, base: &Path) -> Result<Dataset> {
        let mut d = Self::load_values(cfg, base)?;
        if let (Some(l), Source::Array { n, .. }) = (&cfg.labels, &d.source) {
            let data_file = cfg.path.as_deref().unwrap_or("the data");
            d.labels = Some(labels::read_labels(&resolve(l, base), *n, cfg.limit.is_some(), data_file)?);
        }
        Ok(d)
    }

    fn load_values(cfg: &DataConfig, base: &Path) -> Result<Dataset> {
        let path = || -> Result<PathBuf> {
            let p = cfg.path.as_ref().ok_or_else(|| {
                Error::Invalid(format!("data.source = '{}' needs data.path = \"...\"", cfg.source.name()))
            })?;
            Ok(resolve(p, base))
        };
        match cfg.source {
            SourceKind::Toy => {
                let toy = cfg.name.unwrap_or(Toy::Ring8);
                let names = |k: usize| (0..k).map(|c| c.to_string()).collect();
                Ok(Dataset {
                    source: Source::Toy(toy),
                    shape: vec![2],
                    images: false,
                    moments: Moments::centred(0, 0.0),
                    labels: toy.classes().map(|k| Labels { of: Vec::new(), names: names(k) }),
                })
            }
            SourceKind::Idx => {
                let (n, shape, data) = files::idx_images(&path()?, cfg.limit)?;
                Ok(Dataset {
                    source: Source::Array { n, data },
                    shape,
                    images: true,
                    moments: Moments::centred(0, 0.0),
                    labels: None,
                })
            }
            SourceKind::Images => {
                let size = cfg.size.unwrap_or(32);
                let ch = cfg.channels.unwrap_or(3);
                let (n, data, classes) = files::image_folder(&path()?, size, ch, cfg.limit)?;
                Ok(Dataset {
                    source: Source::Array { n, data },
                    shape: vec![ch, size, size],
                    images: true,
                    moments: Moments::centred(0, 0.0),
                    labels: classes.map(|(names, of)| Labels { of, names }),
                })
            }
            SourceKind::Npy => {
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
                    labels: None,
                })
            }
        }
    }

    /// Values per sample.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The number of classes of the data's labels (0 without labels).
    pub fn classes(&self) -> usize {
        self.labels.as_ref().map(|l| l.classes()).unwrap_or(0)
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
            _ => Moments::of(&self.draw(20000, &mut HostRng::stream(0, Stream::Moments)), self.numel()),
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
    /// Batches of `b` from `data`, shuffled per epoch under `seed`.
    pub fn new(data: &'d Dataset, seed: u64, b: usize) -> Self {
        Batcher { data, seed, b, perm: None }
    }

    fn epoch_perm(&mut self, e: u64, n: usize) -> &[u32] {
        if self.perm.as_ref().map(|p| p.0) != Some(e) {
            let mut p: Vec<u32> = (0..n as u32).collect();
            HostRng::stream(self.seed, Stream::Epoch(e)).shuffle(&mut p);
            self.perm = Some((e, p));
        }
        &self.perm.as_ref().unwrap().1
    }

    /// Batch k: samples [b * D], their labels where the data have them, the stored rows they
    /// are (None for toys) and a host generator for this batch's other draws (noise levels).
    pub fn batch(&mut self, k: u64) -> Drawn {
        let mut rng = HostRng::stream(self.seed, Stream::Batch(k));
        let b = self.b;
        match &self.data.source {
            Source::Toy(t) => {
                let (x, labels) = match t.sample_labelled(b, &mut rng) {
                    Some((x, y)) => (x, Some(y)),
                    None => (t.sample(b, &mut rng), None),
                };
                Drawn { x, labels, rows: None, rng }
            }
            Source::Array { n, data } => {
                let (n, d) = (*n, self.data.numel());
                let mut x = Vec::with_capacity(b * d);
                let mut rows = Vec::with_capacity(b);
                for i in 0..b {
                    let pos = k * b as u64 + i as u64;
                    let idx = self.epoch_perm(pos / n as u64, n)[(pos % n as u64) as usize];
                    x.extend_from_slice(&data[idx as usize * d..(idx as usize + 1) * d]);
                    rows.push(idx);
                }
                let labels = self.data.labels.as_ref().map(|l| rows.iter().map(|&r| l.of[r as usize]).collect());
                Drawn { x, labels, rows: Some(rows), rng }
            }
        }
    }
}

/// One training batch as drawn: samples [b * D], labels, the stored rows they are (arrays) and
/// the batch's host generator.
pub struct Drawn {
    /// The samples [b * D].
    pub x: Vec<f32>,
    /// Their labels, where the data have them.
    pub labels: Option<Vec<u32>>,
    /// The stored rows they are (arrays; none for toys).
    pub rows: Option<Vec<u32>>,
    /// The batch's host generator, after the draws above.
    pub rng: HostRng,
}

/// A path from a config: as given where it exists or is absolute, else from the config's folder.
fn resolve(p: &str, base: &Path) -> PathBuf {
    let p = PathBuf::from(p);
    if p.exists() || p.is_absolute() {
        p
    } else {
        base.join(&p)
    }
}
