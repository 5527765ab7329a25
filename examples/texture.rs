//! Texture: step a sampler inside the application's frames, write the samples into the
//! application's texture on the GPU, and read the texture back once to save it.
//!
//!     cargo run --release --example texture -- [--model gmm:ring8] [--out texture]
//!         [--sampler heun] [--steps 100] [--batch 4096] [--seed 0] [--per-frame 10]
//!         [--size 256] [--lim 6]
//!
//! The texture is rgba32float, so it holds the values themselves: for an image model the
//! sampled pixel values, saved as `OUT.npy` [batch, C, H, W], bit-identical to
//! `scoregen sample --seed S --n BATCH --out x.npy` with the same settings; for 2-D points the
//! density's counts, saved as `OUT.npy` [size, size], beside the samples copied into an
//! application buffer (`OUT.samples.npy`, bit-identical to the CLI's). `OUT.png` shows it.

mod common;

use scoregen::embed::{read_texture, Engine, Present};
use std::path::PathBuf;

fn main() {
    let a = common::Args::from_env();
    if let Err(e) = run(&a) {
        common::fail(e);
    }
}

fn run(a: &common::Args) -> Result<(), String> {
    let s = |e: scoregen::error::Error| e.to_string();
    let instance = common::instance(None);
    let (_, device, queue) = common::device(&instance, None)?;
    let engine = Engine::adopt(&device, &queue);
    let model = engine.open(&a.get("model", "gmm:ring8")).map_err(s)?;
    let mut req = model.request();
    req.sampler = a.get("sampler", "heun").parse()?;
    req.steps = a.num("steps", 100)?;
    req.batch = a.num("batch", if model.images() { 64 } else { 4096 })?;
    req.seed = a.num("seed", 0)?;
    let mut sampling = engine.plan(&model, &req).map_err(s)?;

    // The application's resources: a texture the samples are written into, a buffer they are
    // copied to.
    let (size, how, images) = match *model.shape() {
        [c, h, w] => {
            let cols = (req.batch as f64).sqrt().ceil() as usize;
            let rows = req.batch.div_ceil(cols);
            (((cols * w) as u32, (rows * h) as u32), Present::images(cols), Some((c, h, w, cols)))
        }
        _ => {
            let n = a.num("size", 256u32)?;
            ((n, n), Present::points(a.num("lim", 6.0f32)?), None)
        }
    };
    let usage = wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC;
    let texture = common::texture(&device, size, wgpu::TextureFormat::Rgba32Float, usage);
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("the application's buffer"),
        size: sampling.samples_bytes(),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let present = engine.present(&sampling, &texture, &how).map_err(s)?;

    // The frames: each records a few steps and the picture into one encoder.
    let per_frame = a.num("per-frame", 10usize)?;
    sampling.begin(&engine, 0).map_err(s)?;
    let mut frames = 0;
    while !sampling.finished() {
        let mut encoder = device.create_command_encoder(&Default::default());
        sampling.record(&mut encoder, per_frame);
        present.record(&mut encoder);
        if sampling.finished() {
            sampling.copy_to(&mut encoder, &buffer, 0).map_err(s)?;
        }
        queue.submit([encoder.finish()]);
        frames += 1;
    }

    // Read back once.
    let texels = read_texture(engine.gpu(), &texture).map_err(s)?;
    let rgba: &[f32] = bytemuck::cast_slice(&texels);
    let out = PathBuf::from(a.get("out", "texture"));
    let with = |ext: &str| out.with_extension(ext);
    let npy = |path: PathBuf, shape: &[usize], v: &[f32]| {
        scoregen::io::npy::write_npy(&path, shape, v).map_err(s).map(|_| path.display().to_string())
    };
    let (w, h) = (size.0 as usize, size.1 as usize);
    let saved = match images {
        Some((c, ih, iw, cols)) => {
            // Back from the grid to [batch, C, H, W]: channel ch of sample k at (y, x).
            let mut v = vec![0f32; req.batch * c * ih * iw];
            for (i, val) in v.iter_mut().enumerate() {
                let (k, ch, y, x) = (i / (c * ih * iw), i / (ih * iw) % c, i / iw % ih, i % iw);
                let (px, py) = ((k % cols) * iw + x, (k / cols) * ih + y);
                *val = rgba[4 * (py * w + px) + ch];
            }
            npy(with("npy"), &[req.batch, c, ih, iw], &v)?
        }
        None => {
            let counts: Vec<f32> = rgba.chunks(4).map(|p| p[0]).collect();
            buffer.slice(..).map_async(wgpu::MapMode::Read, |_| {});
            engine.wait().map_err(s)?;
            let xs: Vec<f32> =
                bytemuck::cast_slice(&buffer.slice(..).get_mapped_range().map_err(|e| e.to_string())?).to_vec();
            npy(with("samples.npy"), &[req.batch, 2], &xs)?;
            npy(with("npy"), &[h, w], &counts)?
        }
    };
    // A picture of it: pixel values mapped from [-1, 1], or the density's counts on a log scale.
    let max = rgba.chunks(4).map(|p| p[1]).fold(1f32, f32::max);
    let shown: Vec<u8> = rgba
        .chunks(4)
        .flat_map(|p| {
            let v = |x: f32| match images {
                Some(_) => ((x.clamp(-1.0, 1.0) + 1.0) * 127.5) as u8,
                None => ((1.0 + p[0]).ln() / (1.0 + max).ln() * 255.0) as u8,
            };
            [v(p[0]), v(p[1]), v(p[2]), 255]
        })
        .collect();
    let png = with("png");
    image::RgbaImage::from_raw(size.0, size.1, shown).ok_or("size")?.save(&png).map_err(|e| e.to_string())?;
    println!(
        "{} samples, {} steps in {frames} frames -> {saved}, {}",
        req.batch,
        sampling.total_steps(),
        png.display()
    );
    Ok(())
}
