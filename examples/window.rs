//! Window: samples drawn live in a winit window, a few sampler steps per frame, with the step
//! count and noise level on screen.
//!
//!     cargo run --release --example window -- [--model gmm:ring8] [--sampler ode] [--steps 200]
//!         [--batch 20000] [--per-frame 2] [--lim 6] [--frames N] [--capture DIR]
//!
//! By default the 8-Gaussian ring's particles flow under the probability-flow ODE from the
//! prior to the data; `--model runs/mnist/checkpoint.safetensors` shows an MNIST batch
//! denoising instead. When a batch is done it stays on screen for a second and the next batch
//! (the next chains of the same run) starts. `--frames N` stops after N frames; `--capture
//! DIR` also saves frames 1, N/2 and N as PNGs (CI runs this under Xvfb on lavapipe).

mod common;

use scoregen::embed::{read_texture, Engine, Model, Present, Presenter, Sampling};
use std::sync::Arc;
use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::window::{Window, WindowId};

/// The application's own shader: the samples' texture above a strip of text, scaled to the window.
const SHOW: &str = r#"
@group(0) @binding(0) var samples: texture_2d<f32>;
@group(0) @binding(1) var overlay: texture_2d<f32>;

struct Out { @builtin(position) pos: vec4<f32>, @location(0) uv: vec2<f32> };

@vertex fn vs(@builtin(vertex_index) i: u32) -> Out {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return Out(vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0), uv);
}

@fragment fn fs(o: Out) -> @location(0) vec4<f32> {
    let sd = textureDimensions(samples);
    let od = textureDimensions(overlay);
    // The strip keeps its aspect at the samples' width: oh of their rows.
    let oh = f32(od.y) * f32(sd.x) / f32(od.x);
    let y = o.uv.y * (f32(sd.y) + oh);
    if (y < f32(sd.y)) {
        return textureLoad(samples, vec2<u32>(u32(o.uv.x * f32(sd.x)), u32(y)), 0);
    }
    let row = u32((y - f32(sd.y)) / oh * f32(od.y));
    return textureLoad(overlay, vec2<u32>(u32(o.uv.x * f32(od.x)), min(row, od.y - 1u)), 0);
}
"#;

/// The text strip: 512 x 28 texels, shown below the samples at their width.
const STRIP: u32 = 28;
const STRIP_W: u32 = 512;
const RGBA8: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

struct Settings {
    model: String,
    per_frame: usize,
    frames: Option<u64>,
    capture: Option<std::path::PathBuf>,
    hold: u64,
    a: common::Args,
}

/// Everything made once the window exists.
struct Live {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    device: wgpu::Device,
    queue: wgpu::Queue,
    engine: Engine,
    _model: Model,
    sampling: Sampling,
    present: Presenter,
    overlay: wgpu::Texture,
    bind: wgpu::BindGroup,
    to_surface: wgpu::RenderPipeline,
    capture: Option<(wgpu::RenderPipeline, wgpu::Texture)>,
    frame: u64,
    held: u64,
    batch: usize,
}

struct App {
    s: Settings,
    live: Option<Live>,
    error: Option<String>,
}

fn main() {
    let a = common::Args::from_env();
    let settings = (|| -> Result<Settings, String> {
        Ok(Settings {
            model: a.get("model", "gmm:ring8"),
            per_frame: a.num("per-frame", 2)?,
            frames: match a.get("frames", "").as_str() {
                "" => None,
                _ => Some(a.num("frames", 0u64)?),
            },
            capture: Some(a.get("capture", "")).filter(|c| !c.is_empty()).map(Into::into),
            hold: 60,
            a: common::Args::from_env(),
        })
    })()
    .unwrap_or_else(|e| common::fail(e));
    let event_loop = EventLoop::new().unwrap_or_else(|e| common::fail(format!("no display ({e}); set DISPLAY")));
    event_loop.set_control_flow(ControlFlow::Poll);
    let mut app = App { s: settings, live: None, error: None };
    event_loop.run_app(&mut app).unwrap_or_else(|e| common::fail(e));
    if let Some(e) = app.error {
        common::fail(e);
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.live.is_none() {
            match Live::new(el, &self.s) {
                Ok(l) => self.live = Some(l),
                Err(e) => {
                    self.error = Some(e);
                    el.exit();
                }
            }
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(live) = self.live.as_mut() else { return };
        match event {
            WindowEvent::CloseRequested => el.exit(),
            WindowEvent::Resized(size) => {
                (live.config.width, live.config.height) = (size.width.max(1), size.height.max(1));
                live.surface.configure(&live.device, &live.config);
            }
            WindowEvent::RedrawRequested => match live.draw(&self.s) {
                Ok(true) => el.exit(),
                Ok(false) => {}
                Err(e) => {
                    self.error = Some(e);
                    el.exit();
                }
            },
            _ => {}
        }
    }

    fn about_to_wait(&mut self, _: &ActiveEventLoop) {
        if let Some(live) = &self.live {
            live.window.request_redraw();
        }
    }
}

/// A model's name short enough for the strip: a checkpoint's run folder, else the source.
fn short_name(source: &str) -> &str {
    let p = std::path::Path::new(source);
    match (p.extension().and_then(|e| e.to_str()), p.parent().and_then(|d| d.file_name())) {
        (Some("safetensors"), Some(run)) => run.to_str().unwrap_or(source),
        _ => source,
    }
}

/// The layout of `SHOW`'s two textures (one for the window's pipeline and the capture's).
fn show_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let tex = |binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("show"), entries: &[tex(0), tex(1)] })
}

fn show_pipeline(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    format: wgpu::TextureFormat,
) -> wgpu::RenderPipeline {
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("show"),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("show"),
        source: wgpu::ShaderSource::Wgsl(SHOW.into()),
    });
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("show"),
        layout: Some(&layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs"),
            compilation_options: Default::default(),
            targets: &[Some(format.into())],
        }),
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        multiview_mask: None,
        cache: None,
    })
}

impl Live {
    fn new(el: &ActiveEventLoop, s: &Settings) -> Result<Live, String> {
        let e = |e: scoregen::error::Error| e.to_string();
        let instance = common::instance(Some(Box::new(el.owned_display_handle())));
        // The sampler first: its texture's size sets the window's.
        let (mut probe_w, mut probe_h) = (512u32, 512u32);
        let window_attrs = Window::default_attributes().with_title("scoregen").with_resizable(true);
        let window = Arc::new(el.create_window(window_attrs).map_err(|e| format!("cannot open a window: {e}"))?);
        let surface = instance.create_surface(window.clone()).map_err(|e| format!("cannot draw in the window: {e}"))?;
        let (adapter, device, queue) = common::device(&instance, Some(&surface))?;
        let engine = Engine::adopt(&device, &queue);
        let model = engine.open(&s.model).map_err(e)?;
        let mut req = model.request();
        req.sampler = s.a.get("sampler", "ode").parse()?;
        req.steps = s.a.num("steps", 200)?;
        req.batch = s.a.num("batch", if model.images() { 64 } else { 20000 })?;
        let mut sampling = engine.plan(&model, &req).map_err(e)?;
        let how = match *model.shape() {
            [_, h, w] => {
                let cols = (req.batch as f64).sqrt().ceil() as u32;
                (probe_w, probe_h) = (cols * w as u32, req.batch.div_ceil(cols as usize) as u32 * h as u32);
                Present::images(cols as usize)
            }
            _ => Present::points(s.a.num("lim", 6.0f32)?),
        };
        let shown = common::texture(
            &device,
            (probe_w, probe_h),
            RGBA8,
            wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
        );
        let present = engine.present(&sampling, &shown, &how).map_err(e)?;
        let overlay = common::texture(
            &device,
            (STRIP_W, STRIP),
            RGBA8,
            wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        );
        let scale = (768.0 / probe_w.max(probe_h) as f64).max(1.0).floor() as u32;
        let strip_h = (STRIP * probe_w).div_ceil(STRIP_W); // the strip's height at the samples' width
        let _ = window.request_inner_size(winit::dpi::PhysicalSize::new(probe_w * scale, (probe_h + strip_h) * scale));
        let size = window.inner_size();
        let mut config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .ok_or("the window's surface does not work with this adapter")?;
        config.present_mode = wgpu::PresentMode::AutoVsync; // the display's frame rate
        surface.configure(&device, &config);
        let layout = show_layout(&device);
        let to_surface = show_pipeline(&device, &layout, config.format);
        let view = |t: &wgpu::Texture| t.create_view(&Default::default());
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&view(&shown)) },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&view(&overlay)) },
            ],
        });
        let capture = s.capture.as_ref().map(|_| {
            let usage = wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC;
            (
                show_pipeline(&device, &layout, RGBA8),
                common::texture(&device, (STRIP_W, (probe_h * STRIP_W).div_ceil(probe_w) + STRIP), RGBA8, usage),
            )
        });
        sampling.begin(&engine, 0).map_err(e)?;
        let batch = req.batch;
        Ok(Live {
            window,
            surface,
            config,
            device,
            queue,
            engine,
            _model: model,
            sampling,
            present,
            overlay,
            bind,
            to_surface,
            capture,
            frame: 0,
            held: 0,
            batch,
        })
    }

    /// One frame: a few steps, the picture, the text, onto the window. Ok(true): done.
    fn draw(&mut self, s: &Settings) -> Result<bool, String> {
        let e = |e: scoregen::error::Error| e.to_string();
        if self.sampling.finished() {
            self.held += 1;
            if self.held > s.hold {
                // The next chains of the same run.
                self.sampling.begin(&self.engine, self.batch).map_err(e)?;
                self.batch += self.sampling.chains();
                self.held = 0;
            }
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t) | wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => return Ok(false),
            _ => {
                self.surface.configure(&self.device, &self.config);
                return Ok(false);
            }
        };
        self.frame += 1;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.sampling.record(&mut encoder, s.per_frame);
        self.present.record(&mut encoder);
        // The text says where the frame's steps took the chains (queue writes land before the
        // frame's commands).
        let text = format!(
            "{}  step {}/{}  sigma {:.3}  frame {}",
            short_name(&s.model),
            self.sampling.steps_done(),
            self.sampling.total_steps(),
            self.sampling.sigma(),
            self.frame
        );
        let strip = scoregen::io::plot::text_rgba(&text, (self.overlay.width(), STRIP)).map_err(e)?;
        self.queue.write_texture(
            self.overlay.as_image_copy(),
            &strip,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * self.overlay.width()),
                rows_per_image: None,
            },
            self.overlay.size(),
        );
        let target = frame.texture.create_view(&Default::default());
        self.show(&mut encoder, &self.to_surface, &target);
        let last = s.frames.is_some_and(|n| self.frame >= n);
        let keep = s.frames.filter(|_| s.capture.is_some()).is_some_and(|n| [1, n / 2, n].contains(&self.frame));
        if let (Some((pipe, tex)), true) = (&self.capture, keep) {
            self.show(&mut encoder, pipe, &tex.create_view(&Default::default()));
        }
        self.queue.submit([encoder.finish()]);
        self.window.pre_present_notify();
        self.queue.present(frame);
        if let (Some((_, tex)), Some(dir), true) = (&self.capture, &s.capture, keep) {
            let px = read_texture(self.engine.gpu(), tex).map_err(e)?;
            let path = dir.join(format!("frame_{:05}.png", self.frame));
            image::RgbaImage::from_raw(tex.width(), tex.height(), px)
                .ok_or("size")?
                .save(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        self.engine.gpu().check_errors().map_err(e)?;
        Ok(last)
    }

    fn show(&self, encoder: &mut wgpu::CommandEncoder, pipe: &wgpu::RenderPipeline, target: &wgpu::TextureView) {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("show"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::BLACK), store: wgpu::StoreOp::Store },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(pipe);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.draw(0..3, 0..1);
    }
}
