//! `scoregen field`: the picture of a 2-D model.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::ScoreModel;
use crate::sample::{draw, SampleRequest};
use std::path::Path;

/// `scoregen field`: a 2-D model's field at one level beside its samples (PNG, see
/// `io::plot::field`). The heat map is -U (the log-density up to a constant) for models with an
/// energy (energy networks, mixtures), log ||s|| for score models; the arrows are the score.
/// Level: a fixed-level model's own, else `sigma` (default sigma_min); the box [-lim, lim]^2
/// defaults to 3 standard deviations of p_sigma beyond the farthest mean.
pub fn field_picture(
    gpu: &Gpu,
    model: &dyn ScoreModel,
    req: &SampleRequest,
    sigma: Option<f64>,
    lim: Option<f64>,
    out: &Path,
) -> Result<()> {
    if model.numel() != 2 || model.images() {
        return Err(Error::Invalid(format!(
            "field: draws 2-D models; this one has samples of shape {:?}",
            model.shape()
        )));
    }
    let p = model.process();
    let sigma = match (p, sigma) {
        (crate::score::Process::Fixed { sigma }, _) => *sigma,
        (_, Some(s)) => s,
        (_, None) => p.sigma_min(),
    };
    let m = model.moments();
    let far = m.mean.iter().fold(0f64, |a, v| a.max(v.abs()));
    let lim = lim.unwrap_or(far + 3.0 * (m.var + sigma * sigma).sqrt()) as f32;
    let grid = |k: usize| -> Vec<f32> {
        let h = 2.0 * lim / k as f32;
        (0..k * k).flat_map(|i| [-lim + (i % k) as f32 * h + 0.5 * h, -lim + (i / k) as f32 * h + 0.5 * h]).collect()
    };
    let k = 200;
    let pts = grid(k);
    let (s, e) = crate::model::fisher::evaluate_at(gpu, model, &pts, sigma, 4096)?;
    let heat: Vec<f64> = match e {
        Some(e) => e.iter().map(|&u| -(u as f64)).collect(),
        None => s.chunks(2).map(|v| ((v[0] * v[0] + v[1] * v[1]) as f64).sqrt().max(1e-30).ln()).collect(),
    };
    let apts = grid(24);
    let (sa, _) = crate::model::fisher::evaluate_at(gpu, model, &apts, sigma, 4096)?;
    let arrows: Vec<[f32; 4]> = apts.chunks(2).zip(sa.chunks(2)).map(|(x, v)| [x[0], x[1], v[0], v[1]]).collect();
    let xs = draw(gpu, model, req, &mut |_, _| {})?;
    crate::io::plot::field(out, &heat, k, &arrows, lim, &xs)
}
