//! Adapter choice and device creation. The device is requested with the adapter's real
//! limits (not WebGPU's defaults) so that kernels can use what the hardware grants; an
//! application that already owns a `wgpu::Device` hands it over with `Gpu::from_wgpu`.

use super::pipeline::PipelineCache;
use super::pool::BufferPool;
use super::profile::Profiler;
use crate::error::{Error, Result};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Which graphics API to open. `Auto` lets wgpu pick in its order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendChoice {
    /// Vulkan, Metal or DX12, whichever the platform has; OpenGL only when none is found.
    #[default]
    Auto,
    /// Vulkan (`vk`): Linux, Windows, Android; lavapipe on machines without a GPU.
    #[value(alias = "vk")]
    Vulkan,
    /// Metal (`mtl`): macOS and iOS.
    #[value(alias = "mtl")]
    Metal,
    /// Direct3D 12 (`d3d12`): Windows.
    #[value(alias = "d3d12")]
    Dx12,
    /// OpenGL / OpenGL ES (`gles`, `opengl`): a fallback; the kernels are tuned on Vulkan.
    #[value(alias = "gles", alias = "opengl")]
    Gl,
}

impl BackendChoice {
    /// The wgpu backends this choice enumerates.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => wgpu::Backends::all(),
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }
}

impl FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "vulkan" | "vk" => Ok(Self::Vulkan),
            "metal" | "mtl" => Ok(Self::Metal),
            "dx12" | "d3d12" => Ok(Self::Dx12),
            "gl" | "gles" | "opengl" => Ok(Self::Gl),
            other => Err(Error::Invalid(format!("backend '{other}' is not one of auto, vulkan, metal, dx12, gl"))),
        }
    }
}

/// How to open the GPU. `from_env` reads `SCOREGEN_BACKEND` and `SCOREGEN_ADAPTER`.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// The graphics API (`--backend`, `SCOREGEN_BACKEND`).
    pub backend: BackendChoice,
    /// Index into the adapter list that `scoregen info` prints; `None` = best available.
    pub adapter: Option<usize>,
    /// Record timestamp queries around every dispatch (`--profile`).
    pub profile: bool,
}

impl GpuOptions {
    /// Options from `SCOREGEN_BACKEND` and `SCOREGEN_ADAPTER` (unset: auto, the best adapter).
    pub fn from_env() -> Result<Self> {
        let mut o = GpuOptions::default();
        if let Ok(b) = std::env::var("SCOREGEN_BACKEND") {
            o.backend = b.parse()?;
        }
        if let Ok(a) = std::env::var("SCOREGEN_ADAPTER") {
            o.adapter = Some(a.trim().parse().map_err(|_| {
                Error::Invalid(format!("SCOREGEN_ADAPTER='{a}' is not an adapter index (see `scoregen info`)"))
            })?);
        }
        Ok(o)
    }
}

/// Features we enable when the adapter has them, and why.
pub const WANTED_FEATURES: &[(wgpu::Features, &str)] = &[
    (wgpu::Features::TIMESTAMP_QUERY, "per-kernel GPU time for --profile"),
    (wgpu::Features::SUBGROUP, "subgroup shuffles in matmul and attention"),
];

/// The engine's handle on one device: queue, granted limits, buffer pool, pipeline cache.
pub struct Gpu {
    /// The device every kernel runs on (scoregen's own, or the application's: `from_wgpu`).
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend and driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with; plans are checked against them.
    pub limits: wgpu::Limits,
    /// The device's features (subgroups, timestamp queries, shader f16 are used when present).
    pub features: wgpu::Features,
    pub(crate) pool: BufferPool,
    pub(crate) pipelines: PipelineCache,
    pub(crate) profiler: Option<Mutex<Profiler>>,
    /// Errors wgpu raised outside any scope; surfaced by `check_errors` instead of a panic.
    pub(crate) uncaptured: Arc<Mutex<Vec<String>>>,
    /// Kernel configurations tuned on first use (e.g. ops::matmul::tuned_config).
    pub(crate) tuned: super::tune::TuneCache,
    pub(crate) bind_groups_created: std::sync::atomic::AtomicU64,
    /// Shared scratch buffers by slot (im2col matrices): work on one queue runs in order, so
    /// consecutive ops can reuse one buffer instead of each keeping its own.
    scratch: Mutex<Vec<Option<Arc<super::PooledBuffer>>>>,
}

fn instance(backend: BackendChoice) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backend.backends();
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu sees for this backend choice, in the order `--adapter N` indexes.
pub fn enumerate_adapters(backend: BackendChoice) -> Vec<wgpu::Adapter> {
    // Auto: native APIs first; GL (whose probing is noisy on headless machines) only if none.
    let mut v = if backend == BackendChoice::Auto {
        let native = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = native;
        let found = pollster::block_on(wgpu::Instance::new(desc).enumerate_adapters(native));
        if found.is_empty() {
            pollster::block_on(instance(BackendChoice::Gl).enumerate_adapters(wgpu::Backends::GL))
        } else {
            found
        }
    } else {
        pollster::block_on(instance(backend).enumerate_adapters(backend.backends()))
    };
    // Stable order: discrete, integrated, virtual, cpu, other; native APIs before GL; then name.
    v.sort_by_key(|a| {
        let i = a.get_info();
        let rank = match i.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        };
        let api = match i.backend {
            wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
            _ => 1, // GL last: fewer compute features, slower
        };
        (rank, api, i.name.clone(), format!("{:?}", i.backend))
    });
    v
}

/// What to do when no adapter is found.
pub const NO_ADAPTER_HINT: &str = "install a Vulkan/Metal/DX12 driver; on a headless Linux box \
     `apt-get install -y mesa-vulkan-drivers libvulkan1` gives Mesa's software Vulkan (lavapipe)";

/// A one-line hint when `--backend auto` had to fall back to OpenGL (no Vulkan/Metal/DX12
/// adapter): the kernels are tuned and tested on Vulkan (lavapipe on CPU-only machines), and a
/// silent fallback hides the missing driver. None when the choice was explicit.
pub fn gl_fallback_hint(choice: BackendChoice, backend: wgpu::Backend, adapter: &str) -> Option<String> {
    (choice == BackendChoice::Auto && backend == wgpu::Backend::Gl).then(|| {
        format!("note: no Vulkan/Metal/DX12 adapter found, running on '{adapter}' through OpenGL (slower); {NO_ADAPTER_HINT}")
    })
}

impl Gpu {
    /// Open an adapter as `opts` says and create a device with the adapter's full limits.
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        let adapters = enumerate_adapters(opts.backend);
        if adapters.is_empty() {
            return Err(Error::NoAdapter(format!(
                "wgpu found no adapter for backend {:?}; {NO_ADAPTER_HINT}",
                opts.backend
            )));
        }
        let adapter = match opts.adapter {
            Some(i) => adapters.into_iter().nth(i).ok_or_else(|| {
                Error::NoAdapter(format!("--adapter {i} is out of range; `scoregen info` lists the adapters"))
            })?,
            None => adapters.into_iter().next().unwrap(),
        };
        let mut features = wgpu::Features::empty();
        for (f, _) in WANTED_FEATURES {
            if adapter.features().contains(*f) {
                features |= *f;
            }
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("scoregen"),
            required_features: features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::NoAdapter(format!("could not open a device on '{}': {e}", info.name)))?;
        Ok(Self::assemble(device, queue, info, opts.profile))
    }

    /// Adopt a device and queue owned by a host application (embedding). Kernels respect the
    /// limits that device was created with; nothing about it is changed.
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> Gpu {
        let info = device.adapter_info();
        Self::assemble(device, queue, info, false)
    }

    fn assemble(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo, profile: bool) -> Gpu {
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let msg: Vec<String> =
                e.to_string().lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            sink.lock().unwrap().push(msg.join(" "));
        }));
        let limits = device.limits();
        let features = device.features();
        let profiler = if profile { Some(Mutex::new(Profiler::new(&device, &queue, features))) } else { None };
        Gpu {
            pool: BufferPool::new(),
            pipelines: PipelineCache::new(),
            device,
            queue,
            info,
            limits,
            features,
            profiler,
            uncaptured,
            tuned: Default::default(),
            bind_groups_created: std::sync::atomic::AtomicU64::new(0),
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// Returns the first error wgpu raised behind our back since the last call, if any.
    pub fn check_errors(&self) -> Result<()> {
        let mut v = self.uncaptured.lock().unwrap();
        if v.is_empty() {
            Ok(())
        } else {
            let first = v.remove(0);
            v.clear();
            Err(Error::Gpu(first))
        }
    }

    /// Block until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("device poll failed: {e}")))?;
        Ok(())
    }

    /// Pipelines compiled so far (a replayed plan must not add any).
    pub fn pipelines_created(&self) -> u64 {
        self.pipelines.created()
    }

    /// A scratch buffer of at least `bytes` in `slot`, shared by every op that asks for the
    /// same slot (grown on demand; holders of an older, smaller one keep it alive).
    pub fn scratch(&self, slot: usize, bytes: u64) -> Arc<super::PooledBuffer> {
        let mut v = self.scratch.lock().unwrap();
        if v.len() <= slot {
            v.resize(slot + 1, None);
        }
        match &v[slot] {
            Some(b) if b.len >= bytes => b.clone(),
            _ => {
                let class = super::pool::size_class(bytes);
                let b = Arc::new(self.pool.get(&self.device, super::Usage::Storage, class));
                v[slot] = Some(b.clone());
                b
            }
        }
    }

    /// Bind groups created so far (a replayed plan must not add any).
    pub fn bind_groups_created(&self) -> u64 {
        self.bind_groups_created.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Buffer pool counters: live and peak bytes, buffers created.
    pub fn pool_stats(&self) -> super::pool::PoolStats {
        self.pool.stats()
    }

    /// Per-kernel GPU times collected with `--profile` (None when profiling is off).
    pub fn profile_report(&self) -> Option<String> {
        self.profiler.as_ref().map(|p| p.lock().unwrap().report())
    }

    /// The per-kernel table so far, then cleared (None without `--profile`).
    pub fn profile_take(&self) -> Option<String> {
        self.profiler.as_ref().map(|p| {
            let mut p = p.lock().unwrap();
            let r = p.report();
            p.clear();
            r
        })
    }

    /// Largest number of workgroups in one dimension of a dispatch.
    pub fn max_groups_per_dim(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// Short description: "name (backend, type)".
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// Is this a CPU implementation (lavapipe, SwiftShader, WARP)?
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gl_fallback_hint_only_when_auto_lands_on_gl() {
        let hint = gl_fallback_hint(BackendChoice::Auto, wgpu::Backend::Gl, "llvmpipe").unwrap();
        assert!(hint.contains("llvmpipe") && hint.contains("mesa-vulkan-drivers"), "{hint}");
        assert!(!hint.contains('\n'));
        assert!(gl_fallback_hint(BackendChoice::Auto, wgpu::Backend::Vulkan, "llvmpipe").is_none());
        assert!(gl_fallback_hint(BackendChoice::Gl, wgpu::Backend::Gl, "llvmpipe").is_none());
    }
}
