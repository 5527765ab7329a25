//! Sampling across machines: `sample --shard I/N` draws chains [I n / N, (I + 1) n / N) of a
//! run of n chains (chain i's numbers depend only on (seed, i), so the shards, concatenated, are
//! bit-identical to the unsharded output), and writes `<out>.run.json` beside the samples: the
//! run's key (seed, n, shard count, model hash, sampler settings) and the shard's chains.
//! `scoregen merge` checks the shards belong to one run, cover it once, and concatenates them.

use super::ModelSource;
use crate::error::{Error, Result};
use crate::sample::SampleRequest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Shard I of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// I, from 0.
    pub index: usize,
    /// N.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{s}': expected I/N with 0 <= I < N (e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) =
            (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The first chain and the number of chains of this shard of n.
    pub fn chains(&self, n: usize) -> (usize, usize) {
        let at = |k: usize| (k as u128 * n as u128 / self.count as u128) as usize;
        (at(self.index), at(self.index + 1) - at(self.index))
    }
}

/// What `<out>.run.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Equal for every shard of one run: seed, total chains, shard count, model hash, settings.
    pub run: String,
    /// This shard's index.
    pub shard: usize,
    /// Shards in the run.
    pub shards: usize,
    /// The first chain this shard drew.
    pub first_chain: usize,
    /// Chains it drew.
    pub chains: usize,
    /// Chains in the whole run.
    pub n: usize,
    /// The run's seed.
    pub seed: u64,
    /// The shape of one sample.
    pub shape: Vec<usize>,
}

/// FNV-1a 64 of bytes.
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// FNV-1a 64 of a file's bytes, in hex.
pub fn file_hash(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).map_err(|e| Error::io(format!("{}: cannot read", p.display()), e))?;
    Ok(format!("{:016x}", fnv(&bytes, 0xcbf2_9ce4_8422_2325)))
}

/// A hash of what the model is: the bytes of the checkpoint, mixture or composition file (and,
/// for compositions, of each component's file through the file's text), or the built-in name.
pub fn model_hash(src: &ModelSource) -> Result<String> {
    let seed = 0xcbf2_9ce4_8422_2325;
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(format!("{}: cannot read", p.display()), e));
    let h = match src {
        ModelSource::Checkpoint(p) | ModelSource::Compose(p) => fnv(&read(p)?, seed),
        ModelSource::Mixture(super::MixtureSource::File(p)) => fnv(&read(p)?, seed),
        ModelSource::Mixture(m) => fnv(format!("{m:?}").as_bytes(), seed),
    };
    Ok(format!("{h:016x}"))
}

/// The sidecar of `out`.
pub fn sidecar(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".run.json");
    PathBuf::from(s)
}

/// The run's key for `req` (its n and seed are the whole run's).
pub fn run_key(req: &SampleRequest, model: &str, shards: usize) -> String {
    format!(
        "seed {} n {} shards {shards} model {model} sampler {} steps {} opts {:?} conditions {}",
        req.seed,
        req.n,
        req.sampler.name(),
        req.steps,
        req.opts,
        conditions_digest(&req.conditions)
    )
}

/// The conditioning of a run's chains in a few characters (FNV-1a over names, rows and the
/// cycling flag): shards drawn for other classes are not one run.
fn conditions_digest(c: &crate::model::Conditions) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ x as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    eat(&[c.cycle as u8]);
    for (name, v) in &c.values {
        eat(name.as_bytes());
        v.iter().for_each(|x| eat(&x.to_le_bytes()));
    }
    format!("{h:016x}")
}

/// Write `info` as the sidecar JSON beside the shard's output `out`.
pub fn write_info(out: &Path, info: &RunInfo) -> Result<()> {
    let text = serde_json::to_string_pretty(info).expect("run info serialises");
    crate::io::write_atomic(&sidecar(out), text.as_bytes())
}

/// The shards' `.labels.npy` (`sample --class`), concatenated beside the merged output where
/// every shard has one.
fn merge_labels(shards: &[PathBuf], out: &Path, n: usize) -> Result<()> {
    let files: Vec<PathBuf> = shards.iter().map(|p| super::classify::labels_beside(p)).collect();
    if files.is_empty() || !files.iter().all(|f| f.exists()) {
        return Ok(());
    }
    let mut all = Vec::with_capacity(n);
    for f in &files {
        all.extend(crate::io::npy::read_npy(f)?.1);
    }
    if all.len() != n {
        return Err(Error::Invalid(format!(
            "merge: the shards' label files hold {} labels for {n} samples",
            all.len()
        )));
    }
    crate::io::npy::write_npy(&super::classify::labels_beside(out), &[n], &all)
}

fn read_info(path: &Path) -> Result<RunInfo> {
    let side = sidecar(path);
    let text = std::fs::read_to_string(&side).map_err(|e| {
        Error::io(format!("{}: cannot read the shard's run file (written by sample --shard)", side.display()), e)
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: not a run file: {e}", side.display())))
}

/// `scoregen merge`: check the `.npy` shards belong to one run and cover it once, then write
/// them in chain order to `out` (streamed) with the whole run's `.run.json`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<()> {
    let mut shards = inputs.iter().map(|p| Ok((read_info(p)?, p.clone()))).collect::<Result<Vec<_>>>()?;
    let Some((first, first_path)) = shards.first().cloned() else {
        return Err(Error::Invalid("merge: give the shards' .npy files".into()));
    };
    for (info, p) in &shards {
        if info.run != first.run || info.shape != first.shape {
            return Err(Error::Invalid(format!(
                "{} and {} come from different runs (seed, n, model or sampler settings differ): {} / {}",
                p.display(),
                first_path.display(),
                info.run,
                first.run
            )));
        }
    }
    shards.sort_by_key(|(i, _)| i.shard);
    let have: Vec<usize> = shards.iter().map(|(i, _)| i.shard).collect();
    if have != (0..first.shards).collect::<Vec<_>>() {
        return Err(Error::Invalid(format!(
            "merge: the run has {} shards; given shards {have:?} (each exactly once)",
            first.shards
        )));
    }
    let mut shape = vec![first.n];
    shape.extend(&first.shape);
    let mut w = crate::io::npy::NpyWriter::create(out, &shape)?;
    for (info, p) in &shards {
        let (s, data) = crate::io::npy::read_npy(p)?;
        if s.first() != Some(&info.chains) || s[1..] != first.shape[..] {
            return Err(Error::Invalid(format!(
                "{}: holds {s:?}, its run file says {} chains",
                p.display(),
                info.chains
            )));
        }
        w.write(&data)?;
    }
    w.finish()?;
    merge_labels(&shards.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), out, first.n)?;
    write_info(out, &RunInfo { shard: 0, shards: 1, first_chain: 0, chains: first.n, ..first })
}
