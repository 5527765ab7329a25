//! The embedding API (scoregen::embed) on a device the test owns: stepping inside frames draws
//! exactly what the CLI's batched submission draws, the samples land in the application's
//! buffer and texture as the plain-loop references say, and bad requests are refused.

use scoregen::embed::{reference, Engine, Present};
use scoregen::gpu::{Gpu, GpuOptions};
use scoregen::sample::SamplerKind;

fn gpu() -> Gpu {
    Gpu::new(&GpuOptions::from_env().unwrap()).unwrap()
}

fn texture(gpu: &Gpu, format: wgpu::TextureFormat, (w, h): (u32, u32)) -> wgpu::Texture {
    gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("app texture"),
        size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

/// A buffer's contents as f32 (through a staging copy).
fn read_buffer(gpu: &Gpu, b: &wgpu::Buffer) -> Vec<f32> {
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: b.size(),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(b, 0, &staging, 0, b.size());
    gpu.queue.submit([enc.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |r| r.unwrap());
    gpu.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v = bytemuck::cast_slice(&staging.slice(..).get_mapped_range().unwrap()).to_vec();
    v
}

/// An rgba32float texture's pixels, row by row.
fn read_texture(gpu: &Gpu, t: &wgpu::Texture) -> Vec<[f32; 4]> {
    let bytes = scoregen::embed::read_texture(gpu, t).unwrap();
    bytemuck::cast_slice::<u8, f32>(&bytes).chunks(4).map(|p| [p[0], p[1], p[2], p[3]]).collect()
}

#[test]
fn stepping_in_frames_draws_what_the_cli_draws_into_the_applications_buffer_and_texture() {
    let gpu = gpu();
    let engine = Engine::adopt(&gpu.device, &gpu.queue);
    let model = engine.open("gmm:ring8").unwrap();
    let mut req = model.request();
    (req.sampler, req.steps, req.batch, req.seed) = (SamplerKind::Heun, 40, 500, 11);
    let mut s = engine.plan(&model, &req).unwrap();
    assert_eq!((s.chains(), s.shape()), (500, &[2usize][..]));
    // Frames of 7 steps each, recorded into the application's encoders.
    s.begin(&engine, 0).unwrap();
    let mut frames = 0;
    let mut sigmas = Vec::new();
    while !s.finished() {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        assert!(s.record(&mut enc, 7) > 0);
        gpu.queue.submit([enc.finish()]);
        frames += 1;
        sigmas.push(s.sigma());
    }
    assert_eq!(frames, s.total_steps().div_ceil(7));
    assert!(sigmas.windows(2).all(|w| w[1] <= w[0]) && sigmas[0] > 1.0 && *sigmas.last().unwrap() < 0.1, "{sigmas:?}");
    let stepped = s.read(&engine).unwrap();
    // The CLI's path (batched submissions) for the same request: bit for bit.
    let cli_req = scoregen::sample::SampleRequest { n: 500, ..req.clone() };
    let loaded = scoregen::app::Loaded::load(&gpu, &scoregen::app::ModelSource::parse("gmm:ring8").unwrap()).unwrap();
    let drawn = scoregen::sample::draw(&gpu, loaded.model.as_ref(), &cli_req, &mut |_, _| {}).unwrap();
    assert_eq!(stepped.len(), 1000);
    assert!(stepped.iter().zip(&drawn).all(|(a, b)| a.to_bits() == b.to_bits()), "stepped samples differ from draw()");
    // `run` and chains 500.. (a second batch) restart cleanly.
    s.begin(&engine, 0).unwrap();
    s.run(&engine).unwrap();
    assert_eq!(s.read(&engine).unwrap(), stepped);
    // Into the application's buffer, at an offset.
    let app_buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 256 + s.samples_bytes(),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    s.copy_to(&mut enc, &app_buf, 256).unwrap();
    gpu.queue.submit([enc.finish()]);
    assert_eq!(&read_buffer(&gpu, &app_buf)[64..], &stepped[..]);
    // Into textures: the raw density equals the plain-loop splat; the display one is coloured
    // exactly where points landed.
    let raw = texture(&gpu, wgpu::TextureFormat::Rgba32Float, (48, 40));
    let p = engine.present(&s, &raw, &Present::points(6.0)).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    p.record(&mut enc);
    p.record(&mut enc); // twice: the counts are cleared each time
    gpu.queue.submit([enc.finish()]);
    let got = read_texture(&gpu, &raw);
    let want = reference::density(&stepped, 6.0, (48, 40));
    assert_eq!(got, want);
    assert!(want.iter().filter(|p| p[0] > 0.0).count() > 20);
    // Bad requests: named, not a panic.
    let bgra = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d { width: 8, height: 8, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Bgra8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    });
    let e = engine.present(&s, &bgra, &Present::points(6.0)).err().unwrap().to_string();
    assert!(e.contains("Bgra8Unorm") && e.contains("rgba32float"), "{e}");
    let e = engine.present(&s, &raw, &Present::images(0)).err().unwrap().to_string();
    assert!(e.contains("shape [2]"), "{e}");
    let mut rk = req.clone();
    rk.sampler = SamplerKind::Rk45;
    let e = engine.plan(&model, &rk).err().unwrap().to_string();
    assert!(e.contains("rk45") && e.contains("fixed-step"), "{e}");
    // The CLI's request checks hold here too.
    let e =
        engine.plan(&model, &scoregen::sample::SampleRequest { steps: 0, ..req.clone() }).err().unwrap().to_string();
    assert!(e.contains("--steps must be at least 1"), "{e}");
    let e = engine.open("gmm:nowhere.toml").err().unwrap().to_string();
    assert!(e.contains("nowhere.toml"), "{e}");
    let small = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    assert!(s.copy_to(&mut enc, &small, 0).unwrap_err().to_string().contains("COPY_DST"));
}
