//! The guidance trade-off in miniature (`bench guide2d`): a class-conditional model of the
//! 8-Gaussian ring (classes = modes) sampled with classifier-free guidance weights w, and an
//! unconditional model with classifier guidance scales, chains cycling through the classes.
//! Per row: the fraction of class-k samples nearest mode k, and the within-class spread (the
//! RMS distance of a class's samples from their own mean per coordinate, averaged over the
//! classes); a picture of each row's samples.

use crate::dist::gmm::Gmm;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::guide::label_conditions;
use crate::model::{Classifier, ClassifierGuided, FreeGuided, ScoreModel};
use crate::sample::SampleRequest;
use std::path::{Path, PathBuf};

/// The two metrics of samples `xs` [n * 2] whose chain i drew class i mod 8.
pub fn metrics(xs: &[f32], truth: &Gmm) -> (f64, f64) {
    let n = xs.len() / 2;
    let k = truth.weights.len();
    let mut hit = 0;
    let (mut sum, mut sq, mut cnt) = (vec![[0f64; 2]; k], vec![0f64; k], vec![0usize; k]);
    for i in 0..n {
        let p = [xs[2 * i] as f64, xs[2 * i + 1] as f64];
        let c = i % k;
        hit += (truth.nearest_mode(&p) == c) as usize;
        sum[c][0] += p[0];
        sum[c][1] += p[1];
        sq[c] += p[0] * p[0] + p[1] * p[1];
        cnt[c] += 1;
    }
    let spread = (0..k)
        .filter(|&c| cnt[c] > 1)
        .map(|c| {
            let m = cnt[c] as f64;
            let var = (sq[c] / m - (sum[c][0] / m).powi(2) - (sum[c][1] / m).powi(2)) / 2.0;
            var.max(0.0).sqrt()
        })
        .sum::<f64>()
        / k as f64;
    (hit as f64 / n as f64, spread)
}

/// What to compare: checkpoints and the weights / scales of the sweep.
pub struct Sweep {
    /// The class-conditional checkpoint (classifier-free guidance).
    pub conditional: PathBuf,
    /// The unconditional one (classifier guidance).
    pub unconditional: PathBuf,
    /// The noise-conditional classifier.
    pub classifier: PathBuf,
    /// Guidance weights and scales swept.
    pub weights: Vec<f32>,
    /// Samples per setting.
    pub n: usize,
    /// The folder the pictures go to.
    pub out: PathBuf,
}

/// Run the sweep, printing its figures.
pub fn run(gpu: &Gpu, s: &Sweep, json: bool) -> Result<()> {
    let truth = Gmm::ring8();
    let labels: Vec<Option<u32>> = (0..8).map(Some).collect();
    let mut rows = Vec::new();
    for kind in ["cfg", "classifier"] {
        let mut sets = Vec::new();
        for &w in &s.weights {
            let model: Box<dyn ScoreModel> = if kind == "cfg" {
                let (m, _, _) = crate::app::load_checkpoint(gpu, &s.conditional)?;
                Box::new(FreeGuided::new(Box::new(m), w)?)
            } else {
                let (m, _, _) = crate::app::load_checkpoint(gpu, &s.unconditional)?;
                let clf = Classifier::load(gpu, &s.classifier)?;
                Box::new(ClassifierGuided::new(Box::new(m), clf, w, &s.classifier.display().to_string())?)
            };
            let cfg = crate::app::load_checkpoint(gpu, &s.conditional)?.1;
            let mut req: SampleRequest = cfg.sample.request();
            (req.n, req.batch, req.conditions) = (s.n, s.n, label_conditions(8, &labels));
            let xs = crate::sample::draw(gpu, model.as_ref(), &req, &mut |_, _| {})?;
            let (frac, spread) = metrics(&xs, &truth);
            let line = serde_json::json!({"bench": "guide2d", "guidance": kind, "w": w, "n": s.n,
                "sampler": req.sampler.name(), "steps": req.steps, "on_mode": frac, "spread": spread});
            if json {
                println!("{line}");
            } else {
                println!("{kind:<11} w {w:<5} on its mode {frac:.4}  within-class spread {spread:.4}");
            }
            rows.push(line);
            sets.push((format!("{kind} w = {w}"), xs));
        }
        let pic = s.out.join(format!("guide2d_{kind}.png"));
        crate::io::plot::scatter_row(&pic, &sets, 6.0)?;
        if !json {
            println!("  -> {}", pic.display());
        }
    }
    Ok(())
}

/// The sweep's files must exist before a long run.
pub fn check(s: &Sweep) -> Result<()> {
    for p in [&s.conditional, &s.unconditional, &s.classifier] {
        if !p.exists() {
            return Err(crate::Error::Invalid(format!("{}: no such checkpoint", p.display())));
        }
    }
    if !Path::new(&s.out).is_dir() {
        return Err(crate::Error::Invalid(format!("--out {}: not a folder", s.out.display())));
    }
    Ok(())
}
