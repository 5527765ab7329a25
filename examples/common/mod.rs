//! What every example does the way an application would: create its own wgpu device (scoregen
//! then adopts it), and read simple `--key value` arguments.
#![allow(dead_code)]

/// The application's device and queue on the first adapter wgpu finds for `backends` (any
/// backend, or `SCOREGEN_BACKEND=vulkan|metal|dx12|gl`), compatible with `surface` when given,
/// created with the adapter's limits (scoregen's MCMC kernels bind up to 10 storage buffers).
pub fn device(
    instance: &wgpu::Instance,
    surface: Option<&wgpu::Surface<'_>>,
) -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue), String> {
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        compatible_surface: surface,
        force_fallback_adapter: false,
        apply_limit_buckets: false,
    }))
    .map_err(|e| format!("no GPU adapter ({e}); on Linux without a GPU: apt-get install mesa-vulkan-drivers"))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("the application's device"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| format!("cannot open a device: {e}"))?;
    Ok((adapter, device, queue))
}

/// An instance over the backends `SCOREGEN_BACKEND` names (all by default); windowed
/// applications pass their display handle.
pub fn instance(display: Option<Box<dyn wgpu::wgt::WgpuHasDisplayHandle>>) -> wgpu::Instance {
    let backends = match std::env::var("SCOREGEN_BACKEND").unwrap_or_default().as_str() {
        "vulkan" => wgpu::Backends::VULKAN,
        "metal" => wgpu::Backends::METAL,
        "dx12" => wgpu::Backends::DX12,
        "gl" => wgpu::Backends::GL,
        _ => wgpu::Backends::all(),
    };
    let mut desc = match display {
        Some(d) => wgpu::InstanceDescriptor::new_with_display_handle(d),
        None => wgpu::InstanceDescriptor::new_without_display_handle(),
    };
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// A 2-D texture of the application's (one mip level, no multisampling).
pub fn texture(
    device: &wgpu::Device,
    (width, height): (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("the application's texture"),
        size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

/// `--key value` arguments after the program name, with defaults.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    pub fn get(&self, key: &str, default: &str) -> String {
        let flag = format!("--{key}");
        self.0.iter().position(|a| *a == flag).and_then(|i| self.0.get(i + 1)).cloned().unwrap_or(default.into())
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.0.iter().position(|a| *a == format!("--{key}")) {
            None => Ok(default),
            Some(i) => {
                let v = self.0.get(i + 1).ok_or(format!("--{key} needs a value"))?;
                v.parse().map_err(|_| format!("--{key} {v}: not a number"))
            }
        }
    }
}

/// Exit with a one-line error.
pub fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1)
}
