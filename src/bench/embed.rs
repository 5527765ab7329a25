//! Stepping a sampler inside an application's frames against the CLI's batched submission:
//! the same plan and steps, submitted (a) as the CLI does, 256 steps per submission, (b) as a
//! frame loop does, `per_frame` steps recorded into each frame's own encoder and submitted per
//! frame, and (c) the same with the frame's picture drawn into a texture as well (work the CLI
//! does not do: a point of reference). All wait once at the end. Repeats run a, b, c in turn;
//! the figures are the median time of each and the medians of the per-repeat ratios b / a and
//! c / a, with their range.

use super::{median, Figure, Report};
use crate::embed::{Engine, Present};
use crate::error::Result;
use crate::gpu::Gpu;
use std::time::Instant;

/// What to time.
pub struct Setup {
    /// A model source as the CLI takes it.
    pub model: String,
    /// The sampler's name.
    pub sampler: String,
    /// Its steps.
    pub steps: usize,
    /// Chains.
    pub batch: usize,
    /// Steps per frame, one figure each.
    pub per_frame: Vec<usize>,
    /// Repeats of each pair.
    pub repeats: usize,
}

/// The CLI's way, timed into `t`.
fn sampling_run(engine: &Engine, sampling: &mut crate::embed::Sampling, t: &mut Vec<f64>) -> Result<()> {
    sampling.begin(engine, 0)?;
    let t0 = Instant::now();
    sampling.run(engine)?;
    t.push(t0.elapsed().as_secs_f64());
    Ok(())
}

/// Run the benchmark, printing its figures.
pub fn run(gpu: &Gpu, s: &Setup, report: &Report) -> Result<()> {
    let engine = Engine::adopt(&gpu.device, &gpu.queue);
    let model = engine.open(&s.model)?;
    let mut req = model.request();
    req.sampler = s.sampler.parse().map_err(crate::error::Error::Invalid)?;
    (req.steps, req.batch) = (s.steps, s.batch);
    let mut sampling = engine.plan(&model, &req)?;
    let side = 256;
    let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("bench frame"),
        size: wgpu::Extent3d { width: side, height: side, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::STORAGE_BINDING,
        view_formats: &[],
    });
    let how = if model.images() { Present::images(0) } else { Present::points(6.0) };
    let present = engine.present(&sampling, &texture, &how)?;
    report.note(&format!(
        "adapter: {}; {} {}, {} steps ({} per chain), {} chains; CLI: 256 steps per submission; frames: steps + \
         picture per encoder",
        gpu.describe(),
        s.model,
        req.sampler.name(),
        req.steps,
        sampling.total_steps(),
        req.batch
    ));
    // Warm-up: pipelines compiled, buffers touched.
    sampling.begin(&engine, 0)?;
    sampling.run(&engine)?;
    let frames = |sampling: &mut crate::embed::Sampling, k: usize, picture: bool| -> Result<f64> {
        sampling.begin(&engine, 0)?;
        let t0 = Instant::now();
        while !sampling.finished() {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            sampling.record(&mut enc, k);
            if picture {
                present.record(&mut enc);
            }
            gpu.queue.submit([enc.finish()]);
        }
        engine.wait()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    for &k in &s.per_frame {
        let mut t: [Vec<f64>; 3] = Default::default();
        for _ in 0..s.repeats.max(1) {
            sampling_run(&engine, &mut sampling, &mut t[0])?;
            t[1].push(frames(&mut sampling, k, false)?);
            t[2].push(frames(&mut sampling, k, true)?);
        }
        let steps = sampling.total_steps();
        let fields = || vec![("per_frame", k.to_string()), ("steps", steps.to_string())];
        for (i, imp) in ["cli", "frames", "frames+picture"].iter().enumerate() {
            let value = median(&mut t[i].clone()) * 1e3;
            report.emit(Figure { bench: "embed", fields: fields(), imp: imp.to_string(), value, unit: "ms" });
        }
        for (i, imp) in [(1, "frames/cli"), (2, "frames+picture/cli")] {
            let mut r: Vec<f64> = t[i].iter().zip(&t[0]).map(|(b, a)| b / a).collect();
            let (lo, hi) = (r.iter().copied().fold(f64::INFINITY, f64::min), r.iter().copied().fold(0.0, f64::max));
            report.emit(Figure { bench: "embed", fields: fields(), imp: imp.into(), value: median(&mut r), unit: "x" });
            report.note(&format!("  {k} steps per frame, {imp}: range {lo:.3} .. {hi:.3} over {} repeats", r.len()));
        }
    }
    Ok(())
}
