//! Samples into an application's texture on the GPU (shaders/present.wgsl): image samples as a
//! grid of pixels, 2-D points as a density splatted over a square. No host round-trip.

use super::Sampling;
use crate::error::{Error, Result};
use crate::gpu::pipeline::PipelineKey;
use crate::gpu::{fold_groups, Gpu};
use crate::ops::kernels::PresentParams;
use std::sync::Arc;

/// How samples are shown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Present {
    /// Image samples [C, H, W] (C = 1 or 3) tiled left to right, top to bottom, `cols` per row
    /// (0: as square a grid as the chains make), from the texture's top-left corner.
    Images {
        /// Images per row (0: a square grid).
        cols: usize,
    },
    /// 2-D points splatted over [-lim, lim]^2 (x to the right, y up), one count per pixel.
    Points {
        /// Half the side of the square shown, in data units.
        lim: f32,
    },
}

impl Present {
    /// Images, `cols` per row (0: a square grid).
    pub fn images(cols: usize) -> Present {
        Present::Images { cols }
    }

    /// Points over [-lim, lim]^2.
    pub fn points(lim: f32) -> Present {
        Present::Points { lim }
    }
}

/// Writes a `Sampling`'s samples into one texture of the application: `rgba8unorm` (for
/// display: pixel values in [-1, 1] mapped to [0, 1]; densities through a colour ramp on a dark
/// background) or `rgba32float` (the values themselves: pixel values as sampled, each
/// density pixel's count in r and the largest count in g). The texture needs
/// `STORAGE_BINDING` usage.
pub struct Presenter {
    dispatches: Vec<(Arc<crate::gpu::pipeline::Pipeline>, wgpu::BindGroup, [u32; 3])>,
    _params: wgpu::Buffer,
    _counts: Option<wgpu::Buffer>,
}

impl Presenter {
    pub(super) fn new(gpu: &Gpu, s: &Sampling, texture: &wgpu::Texture, how: &Present) -> Result<Presenter> {
        let shader = match texture.format() {
            wgpu::TextureFormat::Rgba8Unorm => "present_rgba8",
            wgpu::TextureFormat::Rgba32Float => "present_rgba32f",
            f => {
                return Err(Error::Invalid(format!(
                    "texture format {f:?}: samples are written to rgba8unorm or rgba32float storage textures"
                )))
            }
        };
        if !texture.usage().contains(wgpu::TextureUsages::STORAGE_BINDING)
            || texture.dimension() != wgpu::TextureDimension::D2
        {
            return Err(Error::Invalid(format!(
                "the texture ({:?}, usage {:?}) must be 2-D with STORAGE_BINDING usage",
                texture.dimension(),
                texture.usage()
            )));
        }
        let (width, height) = (texture.width(), texture.height());
        let n = s.chains() as u32;
        let raw = (texture.format() == wgpu::TextureFormat::Rgba32Float) as u32;
        let mut p = PresentParams { n, width, height, raw, ..Default::default() };
        let entries: &[&str] = match (*how, s.shape()) {
            (Present::Images { cols }, &[c, h, w]) if c == 1 || c == 3 => {
                if (w as u32) > width || (h as u32) > height {
                    return Err(Error::Invalid(format!(
                        "a {width} x {height} texture cannot show one {w} x {h} image; make it larger"
                    )));
                }
                let cols = if cols == 0 { (n as f64).sqrt().ceil() as u32 } else { cols as u32 };
                (p.c, p.h, p.w, p.cols) = (c as u32, h as u32, w as u32, cols.clamp(1, width / w as u32));
                &["images"]
            }
            (Present::Points { lim }, &[2]) if lim > 0.0 && lim.is_finite() => {
                p.lim = lim;
                &["clear", "splat", "shade"]
            }
            (how, shape) => {
                return Err(Error::Invalid(format!(
                "{how:?} cannot show samples of shape {shape:?}: images are [1 or 3, H, W], points [2] (and lim > 0)"
            )))
            }
        };
        let params = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scoregen present params"),
            size: std::mem::size_of::<PresentParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&params, 0, bytemuck::bytes_of(&p));
        let counts = (p.lim > 0.0).then(|| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("scoregen present counts"),
                size: 4 * (width as u64 * height as u64 + 1),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        });
        let view = texture.create_view(&Default::default());
        let max = gpu.max_groups_per_dim();
        let mut dispatches = Vec::new();
        for &entry in entries {
            let pipe = gpu.pipelines.get(&gpu.device, &PipelineKey::new(shader, entry, &[]))?;
            let mut bind = vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
            let groups = match entry {
                "images" | "shade" => [width.div_ceil(8), height.div_ceil(8), 1],
                "clear" => fold_groups((width * height + 1).div_ceil(256), max)?,
                _ => fold_groups(n.div_ceil(256), max)?,
            };
            if entry == "images" || entry == "splat" {
                bind.push(wgpu::BindGroupEntry { binding: 1, resource: s.samples().as_entire_binding() });
            }
            if let (Some(c), false) = (&counts, entry == "images") {
                bind.push(wgpu::BindGroupEntry { binding: 2, resource: c.as_entire_binding() });
            }
            if entry == "images" || entry == "shade" {
                bind.push(wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&view) });
            }
            let group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("scoregen present"),
                layout: &pipe.layout,
                entries: &bind,
            });
            dispatches.push((pipe, group, groups));
        }
        gpu.check_errors()?;
        Ok(Presenter { dispatches, _params: params, _counts: counts })
    }

    /// Record the samples' picture into the application's encoder (after the steps that made
    /// them).
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("scoregen present"),
            timestamp_writes: None,
        });
        for (pipe, group, g) in &self.dispatches {
            pass.set_pipeline(&pipe.pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(g[0], g[1], g[2]);
        }
    }
}

/// Read a texture back to the host once (waits for the device): its rows of texels, tightly
/// packed (4 bytes a texel for rgba8unorm, 16 for rgba32float). Needs `COPY_SRC` usage.
pub fn read_texture(gpu: &Gpu, t: &wgpu::Texture) -> Result<Vec<u8>> {
    let texel =
        t.format().block_copy_size(None).ok_or_else(|| Error::Invalid(format!("{:?}: not readable", t.format())))?;
    let (w, h) = (t.width(), t.height());
    let row = (w * texel).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("scoregen texture readback"),
        size: (row * h) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_texture_to_buffer(
        t.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buf,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: Some(h) },
        },
        t.size(),
    );
    gpu.queue.submit([enc.finish()]);
    buf.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    gpu.wait()?;
    gpu.check_errors()?;
    let view = buf.slice(..).get_mapped_range().map_err(|e| Error::Invalid(format!("texture readback: {e}")))?;
    let mut out = Vec::with_capacity((w * h * texel) as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&view[y * row as usize..y * row as usize + (w * texel) as usize]);
    }
    Ok(out)
}
