//! `scoregen index`: build and describe retrieval databases (scoregen::retrieval).

use crate::{open, Cli};
use clap::Subcommand;
use scoregen::config::Config;
use scoregen::data::{Dataset, Source};
use scoregen::ops::knn::Metric;
use scoregen::retrieval::{self, Database, EncoderSpec};
use scoregen::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum IndexCmd {
    /// Embed a data set into a database file (safetensors).
    Build {
        /// A config (its [data] section) or a .npy array [N, ...].
        #[arg(long)]
        data: PathBuf,
        /// identity, pca:K (fitted on these data), db:FILE (another database's encoder, e.g. the
        /// training database's PCA, so a database swapped in at sampling time embeds alike) or
        /// npy:FILE (embeddings made elsewhere, one row per data row).
        #[arg(long, value_parser = |s: &str| s.parse::<EncoderSpec>())]
        encoder: EncoderSpec,
        #[arg(long, value_enum, default_value = "cosine")]
        metric: Metric,
        /// Rows: all of a file's (default) or this many; toys: this many draws (default 10,000).
        #[arg(long)]
        n: Option<usize>,
        /// Only the rows of these classes (labelled data: a number or a comma-separated list).
        #[arg(long)]
        class: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// What a database holds.
    Info { file: PathBuf },
    /// Every entry's k nearest other entries, found on the GPU (an N x N top-k), as a .npy [N, k].
    Neighbours {
        file: PathBuf,
        #[arg(long, default_value_t = 8)]
        k: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

/// The rows [n, shape] of a config's data (stored sets: the first n rows as stored, so a
/// training database lines up with the training rows; toys: n draws from train.seed, the draw
/// training makes) or a .npy file, with the data's labels where they have them.
fn rows(path: &Path, n: Option<usize>) -> Result<(Vec<f32>, Vec<usize>, Option<Vec<u32>>)> {
    let is = |ext: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
    if is("npy") {
        let (shape, data) = scoregen::io::npy::read_npy(path)?;
        if shape.len() < 2 || shape[0] == 0 {
            return Err(Error::Invalid(format!("{}: need [N, ...] with N >= 1, got {shape:?}", path.display())));
        }
        let keep = n.unwrap_or(shape[0]).min(shape[0]);
        let d: usize = shape[1..].iter().product();
        return Ok((data[..keep * d].to_vec(), shape[1..].to_vec(), None));
    }
    if !is("toml") {
        return Err(Error::Invalid(format!("--data {}: give a config (.toml) or a .npy array", path.display())));
    }
    let cfg = Config::load(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let ds = Dataset::load(&cfg.data, base)?;
    match &ds.source {
        Source::Array { n: m, data } => {
            let keep = n.unwrap_or(*m).min(*m);
            let labels = ds.labels.as_ref().map(|l| l.of[..keep].to_vec());
            Ok((data[..keep * ds.numel()].to_vec(), ds.shape.clone(), labels))
        }
        Source::Toy(t) => {
            // The same draw as `Dataset::draw`; mixture toys also tell each point's component.
            let (count, mut rng) = (n.unwrap_or(10_000), scoregen::rng::HostRng::new(cfg.train.seed));
            Ok(match t.sample_labelled(count, &mut rng) {
                Some((x, y)) => (x, ds.shape.clone(), Some(y)),
                None => (ds.draw(count, &mut scoregen::rng::HostRng::new(cfg.train.seed)), ds.shape.clone(), None),
            })
        }
    }
}

/// Keep the rows whose label is in `classes` (a comma-separated list of class numbers).
fn only_classes(
    (x, shape, labels): (Vec<f32>, Vec<usize>, Option<Vec<u32>>),
    classes: &str,
    data: &Path,
) -> Result<(Vec<f32>, Vec<usize>, Option<Vec<u32>>)> {
    let want: Vec<u32> = classes
        .split(',')
        .map(|c| c.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Invalid(format!("--class {classes}: give class numbers, e.g. 3 or 0,2")))?;
    let labels = labels.ok_or_else(|| {
        Error::Invalid(format!("--class {classes}: {} has no labels (data.labels in the config)", data.display()))
    })?;
    let d: usize = shape.iter().product();
    let keep: Vec<usize> = (0..labels.len()).filter(|&i| want.contains(&labels[i])).collect();
    if keep.is_empty() {
        return Err(Error::Invalid(format!("--class {classes}: no row of {} has these labels", data.display())));
    }
    let x = keep.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect();
    Ok((x, shape, Some(keep.iter().map(|&i| labels[i]).collect())))
}

pub fn cmd_index(cli: &Cli, which: &IndexCmd) -> Result<()> {
    match which {
        IndexCmd::Info { file } => {
            println!("{}: {}", file.display(), Database::load(file)?.describe());
            Ok(())
        }
        IndexCmd::Neighbours { file, k, out } => {
            let db = Database::load(file)?;
            let gpu = open(cli)?;
            let t0 = std::time::Instant::now();
            let table = db.index(&gpu)?.neighbour_table(&gpu, &db.embeddings, *k)?;
            let secs = t0.elapsed().as_secs_f64();
            let values: Vec<f32> = table.iter().map(|&i| i as f32).collect();
            scoregen::io::npy::write_npy(out, &[db.info.n, *k], &values)?;
            eprintln!("{} x {} neighbour table (k = {k}) in {secs:.1} s -> {}", db.info.n, db.info.n, out.display());
            Ok(())
        }
        IndexCmd::Build { data, encoder, metric, n, class, out } => {
            if !out.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
                return Err(Error::Invalid(format!("--out {}: a database is a .safetensors file", out.display())));
            }
            let mut picked = rows(data, *n)?;
            if let Some(c) = class {
                picked = only_classes(picked, c, data)?;
            }
            let (x, shape, labels) = picked;
            let labels = labels.map(|l| l.iter().map(|&c| c as f32).collect());
            let gpu = open(cli)?;
            let t0 = std::time::Instant::now();
            let db = retrieval::build(&gpu, &x, &shape, encoder, *metric, labels, &data.display().to_string())?;
            db.save(out)?;
            eprintln!("{} in {:.1} s -> {}", db.describe(), t0.elapsed().as_secs_f64(), out.display());
            Ok(())
        }
    }
}
