//! Headless: adopt a device, sample, write a PNG.
//!
//!     cargo run --release --example headless -- [--model gmm:ring8] [--out headless.png]
//!         [--sampler heun] [--steps 100] [--batch 10000] [--seed 0] [--size 512] [--lim 6]
//!
//! The model is any source the CLI takes (a checkpoint, gmm:..., compose:...). Points are drawn
//! as their density over [-lim, lim]^2, images as a grid; both straight into an rgba8unorm
//! texture on the GPU, read back once for the PNG.

mod common;

use scoregen::embed::{read_texture, Engine, Present};

fn main() {
    let a = common::Args::from_env();
    if let Err(e) = run(&a) {
        common::fail(e);
    }
}

fn run(a: &common::Args) -> Result<(), String> {
    let instance = common::instance(None);
    let (_, device, queue) = common::device(&instance, None)?;
    // scoregen adopts the application's device: nothing else is created.
    let engine = Engine::adopt(&device, &queue);
    let model = engine.open(&a.get("model", "gmm:ring8")).map_err(|e| e.to_string())?;
    let mut req = model.request();
    req.sampler = a.get("sampler", "heun").parse().map_err(|e| format!("--sampler: {e}"))?;
    req.steps = a.num("steps", 100)?;
    req.batch = a.num("batch", if model.images() { 64 } else { 10000 })?;
    req.seed = a.num("seed", 0)?;
    let mut sampling = engine.plan(&model, &req).map_err(|e| e.to_string())?;
    sampling.begin(&engine, 0).map_err(|e| e.to_string())?;
    sampling.run(&engine).map_err(|e| e.to_string())?;

    let (size, how) = match *model.shape() {
        [_, h, w] => {
            let cols = (req.batch as f64).sqrt().ceil() as u32;
            ((cols * w as u32, req.batch.div_ceil(cols as usize) as u32 * h as u32), Present::images(cols as usize))
        }
        _ => {
            let s = a.num("size", 512u32)?;
            ((s, s), Present::points(a.num("lim", 6.0f32)?))
        }
    };
    let usage = wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC;
    let texture = common::texture(&device, size, wgpu::TextureFormat::Rgba8Unorm, usage);
    let present = engine.present(&sampling, &texture, &how).map_err(|e| e.to_string())?;
    let mut encoder = device.create_command_encoder(&Default::default());
    present.record(&mut encoder);
    queue.submit([encoder.finish()]);
    let pixels = read_texture(engine.gpu(), &texture).map_err(|e| e.to_string())?;
    let out = a.get("out", "headless.png");
    image::RgbaImage::from_raw(size.0, size.1, pixels)
        .ok_or("texture size mismatch")?
        .save(&out)
        .map_err(|e| format!("{out}: {e}"))?;
    println!("{} samples ({}, {} steps) -> {out}", req.batch, req.sampler.name(), sampling.total_steps());
    Ok(())
}
