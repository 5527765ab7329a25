//! Pipeline cache. A compute pipeline is identified by shader file, entry point and every
//! specialisation constant (WGSL `override`) it was built with; each is compiled once per
//! device and shared.

use crate::error::{Error, Result};
use crate::shaders;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Everything that makes one pipeline different from another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader's name in `shaders::SOURCES`.
    pub shader: &'static str,
    /// The entry point.
    pub entry: &'static str,
    /// (override name, f64 bits), sorted by name.
    pub constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    /// The key of `entry` in `shader` with these override constants (order does not matter).
    pub fn new(shader: &'static str, entry: &'static str, constants: &[(&'static str, f64)]) -> Self {
        let mut c: Vec<_> = constants.iter().map(|(k, v)| (*k, v.to_bits())).collect();
        c.sort();
        PipelineKey { shader, entry, constants: c }
    }
}

/// A compiled compute pipeline with its bind group layout.
pub struct Pipeline {
    /// The wgpu pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bind group layout (derived from the shader).
    pub layout: wgpu::BindGroupLayout,
    /// shader::entry, for profiles and errors.
    pub label: String,
    /// Its row in `--profile`: the label, or with `SCOREGEN_PROFILE=constants` the label and its
    /// constants (one row per specialisation: per convolution mode and shape, say).
    pub profile_label: String,
}

/// `SCOREGEN_CHECKED=1`: compile shaders with wgpu's runtime bounds checks and loop bounding.
pub fn checked_shaders() -> bool {
    std::env::var("SCOREGEN_CHECKED").map(|v| v == "1").unwrap_or(false)
}

/// Shader name, and the override values it was written out for (empty when not specialised).
type ModuleKey = (&'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    /// By shader name, and by override values for sources with `@unroll` loops.
    modules: Mutex<HashMap<ModuleKey, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    created: Mutex<u64>,
}

impl PipelineCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn created(&self) -> u64 {
        *self.created.lock().unwrap()
    }

    fn module(
        &self,
        device: &wgpu::Device,
        key: &PipelineKey,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ShaderModule>> {
        let name = key.shader;
        let src =
            shaders::source(name).ok_or_else(|| Error::Invalid(format!("no shader named '{name}' in shaders/")))?;
        let specialised = src.contains(shaders::UNROLL);
        let mkey = (name, if specialised { key.constants.clone() } else { Vec::new() });
        let mut m = self.modules.lock().unwrap();
        if let Some(x) = m.get(&mkey) {
            return Ok(x.clone());
        }
        let text: std::borrow::Cow<'static, str> = if specialised {
            shaders::specialise(src, constants)
                .map_err(|e| Error::Invalid(format!("shaders/{name}.wgsl: {e}")))?
                .map(Into::into)
                .unwrap_or(src.into())
        } else {
            src.into()
        };
        let desc = wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(text) };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = if checked_shaders() {
            device.create_shader_module(desc)
        } else {
            // SAFETY: every kernel clamps its indices into range by construction (loads use
            // min(i, len - 1), stores are masked) and every loop has a uniform bound, which the
            // CPU-reference tests exercise on random shapes. wgpu's injected bounds checks and
            // loop counters block the compiler's unrolling (3x slower matmul on lavapipe).
            // SCOREGEN_CHECKED=1 turns them back on for debugging.
            unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            let msg: Vec<String> =
                e.to_string().lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            return Err(Error::Gpu(format!("shaders/{name}.wgsl does not compile on this adapter: {}", msg.join(" "))));
        }
        let module = Arc::new(module);
        m.insert(mkey, module.clone());
        Ok(module)
    }

    pub fn get(&self, device: &wgpu::Device, key: &PipelineKey) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.pipelines.lock().unwrap().get(key) {
            return Ok(p.clone());
        }
        let constants: Vec<(&str, f64)> = key.constants.iter().map(|(k, v)| (*k, f64::from_bits(*v))).collect();
        let module = self.module(device, key, &constants)?;
        let label = format!("{}::{}", key.shader, key.entry);
        let consts: Vec<String> = constants.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            let msg: Vec<String> =
                e.to_string().lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            return Err(Error::Gpu(format!(
                "pipeline {label} [{}] failed to build: {}",
                consts.join(", "),
                msg.join(" ")
            )));
        }
        let layout = pipeline.get_bind_group_layout(0);
        let by_constants = std::env::var("SCOREGEN_PROFILE").is_ok_and(|v| v == "constants");
        let profile_label = if by_constants { format!("{label} {}", consts.join(" ")) } else { label.clone() };
        let p = Arc::new(Pipeline { pipeline, layout, label, profile_label });
        self.pipelines.lock().unwrap().insert(key.clone(), p.clone());
        *self.created.lock().unwrap() += 1;
        Ok(p)
    }
}
