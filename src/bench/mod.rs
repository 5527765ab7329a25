//! Benchmark programs (not tests): the shared workloads of docs/workloads.md.
//! Each figure is printed as a line for people or, with `--json`, as one JSON object per line:
//! `{"bench":"gemm","n":1024,"impl":"scoregen","value":41.2,"unit":"GFLOP/s"}`.

pub mod attention;
pub mod du2d;
pub mod embed;
pub mod gemm;
pub mod guidance;
pub mod guide2d;
pub mod knn;
pub mod mcmc;
pub mod mlp;
pub mod objectives;
pub mod retrieval2d;
pub mod sample;
pub mod unet;

use crate::error::Result;
use crate::gpu::{Gpu, Recorder};
use std::time::Instant;

/// One printed figure.
pub struct Figure {
    /// The benchmark's name.
    pub bench: &'static str,
    /// Extra identifying fields, e.g. ("n", "1024") or ("shape", "\"16x4x256x32\"") (JSON values).
    pub fields: Vec<(&'static str, String)>,
    /// What was measured (our kernel, a peer, a ratio).
    pub imp: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

impl Figure {
    /// As one JSON line.
    pub fn json(&self) -> String {
        let mut s = format!("{{\"bench\":\"{}\"", self.bench);
        for (k, v) in &self.fields {
            s += &format!(",\"{k}\":{v}");
        }
        s += &format!(",\"impl\":\"{}\",\"value\":{},\"unit\":\"{}\"}}", self.imp, fmt_num(self.value), self.unit);
        s
    }
    /// As one aligned line.
    pub fn human(&self) -> String {
        let f: Vec<String> = self.fields.iter().map(|(k, v)| format!("{k}={}", v.trim_matches('"'))).collect();
        format!("{:<10} {:<24} {:<28} {:>10} {}", self.bench, f.join(" "), self.imp, fmt_num(self.value), self.unit)
    }
}

fn fmt_num(v: f64) -> String {
    if v.is_finite() {
        format!("{:.4}", v).trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        "null".into()
    }
}

/// Prints figures as they come.
pub struct Report {
    /// JSON lines instead of aligned text.
    pub json: bool,
}
impl Report {
    /// Print a figure.
    pub fn emit(&self, f: Figure) {
        if self.json {
            println!("{}", f.json());
        } else {
            println!("{}", f.human());
        }
    }
    /// Print a note (nothing with --json, so stdout stays JSON lines).
    pub fn note(&self, s: &str) {
        if !self.json {
            println!("{s}");
        }
    }
}

/// The median of timings (the upper one of an even count), sorting them in place.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Best wall time of `reps` runs of `record` (one submission each, waited), after a warm-up of
/// at least one run and 0.2 s: the first run builds the pipelines, and drivers keep working
/// after it (lavapipe writes the compiled shaders to its disk cache on a thread of its own; W4's
/// first calls after a fresh build ran 1.4-1.7 ms where the later ones ran 0.95).
pub fn best_time(gpu: &Gpu, reps: usize, mut record: impl FnMut(&mut Recorder) -> Result<()>) -> Result<f64> {
    let mut run = || -> Result<f64> {
        let t = Instant::now();
        let mut rec = Recorder::new(gpu);
        record(&mut rec)?;
        rec.finish()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let warm = Instant::now();
    run()?;
    while warm.elapsed().as_secs_f64() < 0.2 {
        run()?;
    }
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        best = best.min(run()?);
    }
    Ok(best)
}
