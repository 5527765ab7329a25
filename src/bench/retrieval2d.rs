//! The database swap in miniature (`bench retrieval2d`): one retrieval-conditioned model of the
//! 8-Gaussian ring sampled with several databases (queries drawn per chain from each), beside an
//! unconditional model. Per database: the fraction of samples near each mode (within 1.0 of its
//! centre: 3.3 standard deviations), and the sliced W2 to the ring; one picture of all rows.

use crate::app::retrieval_cli::RetrievalArgs;
use crate::app::Loaded;
use crate::dist::gmm::Gmm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::path::PathBuf;

/// What to compare.
pub struct Swap {
    /// The retrieval-conditioned checkpoint.
    pub checkpoint: PathBuf,
    /// An unconditional checkpoint to compare with.
    pub unconditional: Option<PathBuf>,
    /// The databases swapped in, one panel each.
    pub databases: Vec<PathBuf>,
    /// Samples per database.
    pub n: usize,
    /// The seed.
    pub seed: u64,
    /// The folder the picture goes to.
    pub out: PathBuf,
}

/// Fractions of `xs` [n * 2] within 1.0 of each mode of the ring.
pub fn near_modes(xs: &[f32], truth: &Gmm) -> Vec<f64> {
    let n = xs.len() / 2;
    let mut near = vec![0usize; truth.weights.len()];
    for p in xs.chunks(2) {
        let p = [p[0] as f64, p[1] as f64];
        let k = truth.nearest_mode(&p);
        let c = &truth.means[k];
        if ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt() < 1.0 {
            near[k] += 1;
        }
    }
    near.iter().map(|&c| c as f64 / n.max(1) as f64).collect()
}

/// Run the comparison, printing its figures.
pub fn run(gpu: &Gpu, s: &Swap, json: bool) -> Result<()> {
    if !s.out.is_dir() {
        return Err(Error::Invalid(format!("--out {}: not a folder", s.out.display())));
    }
    let truth = Gmm::ring8();
    let reference = truth.sample(s.n, &mut crate::rng::HostRng::new(s.seed ^ 0x5eed));
    let name = s.checkpoint.display().to_string();
    let mut sets = Vec::new();
    let report = |what: String, xs: &[f32], sampler: &str| {
        let w2 = crate::metrics::sliced_w2(xs, &reference, 2, 256, 7);
        let modes = near_modes(xs, &truth);
        let line = serde_json::json!({"bench": "retrieval2d", "database": what, "n": s.n, "sampler": sampler,
            "near_mode": modes, "near_any": modes.iter().sum::<f64>(), "sliced_w2": w2});
        if json {
            println!("{line}");
        } else {
            let m: Vec<String> = modes.iter().map(|f| format!("{f:.3}")).collect();
            println!("{what:<40} near each mode [{}]  sliced W2 {w2:.4}", m.join(" "));
        }
    };
    for db in &s.databases {
        let loaded = Loaded::load(gpu, &crate::app::ModelSource::Checkpoint(s.checkpoint.clone()))?;
        let mut req = loaded.sample_defaults().request();
        (req.n, req.batch, req.seed) = (s.n, s.n.min(4096), s.seed);
        let args = RetrievalArgs { database: Some(db.clone()), query: None };
        let r = args.retrieve(gpu, &loaded, &name, (s.seed, 0, s.n, s.n))?.ok_or_else(|| {
            Error::Invalid(format!("{name}: not a retrieval-conditioned model (trained without [retrieval])"))
        })?;
        req.conditions = r.conditions;
        let xs = crate::sample::draw(gpu, loaded.model.as_ref(), &req, &mut |_, _| {})?;
        report(db.display().to_string(), &xs, req.sampler.name());
        let file = db.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned());
        sets.push((format!("database {file}"), xs));
    }
    if let Some(u) = &s.unconditional {
        let loaded = Loaded::load(gpu, &crate::app::ModelSource::Checkpoint(u.clone()))?;
        let mut req = loaded.sample_defaults().request();
        (req.n, req.batch, req.seed, req.conditions) = (s.n, s.n.min(4096), s.seed, loaded.conditions.clone());
        let xs = crate::sample::draw(gpu, loaded.model.as_ref(), &req, &mut |_, _| {})?;
        report(format!("unconditional {}", u.display()), &xs, req.sampler.name());
        sets.push(("unconditional".to_string(), xs));
    }
    // The floor: another draw of the ring against the reference, at this n.
    let other = truth.sample(s.n, &mut crate::rng::HostRng::new(s.seed ^ 0xf100));
    report("the ring itself (another draw)".into(), &other, "exact");
    sets.push(("the ring (exact draws)".to_string(), reference.clone()));
    let pic = s.out.join("retrieval2d.png");
    crate::io::plot::scatter_row(&pic, &sets, 6.0)?;
    if !json {
        println!("  -> {} (one panel per database, then the unconditional model and the ring)", pic.display());
    }
    Ok(())
}
