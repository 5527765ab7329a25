//! Embedding: scoregen inside an application that owns its `wgpu::Device`.
//!
//! ```no_run
//! # fn frame(device: &wgpu::Device, queue: &wgpu::Queue, texture: &wgpu::Texture) -> scoregen::error::Result<()> {
//! use scoregen::embed::{Engine, Present};
//! let engine = Engine::adopt(device, queue);                 // the application's device and queue
//! let model = engine.open("gmm:ring8")?;                    // a checkpoint, gmm:..., compose:...
//! let mut req = model.request();                            // the model's sampler defaults
//! req.batch = 4096;                                         // chains planned (and drawn) at once
//! let mut sampling = engine.plan(&model, &req)?;            // plan once: no allocation after this
//! let present = engine.present(&sampling, texture, &Present::points(6.0))?;
//! sampling.begin(&engine, 0)?;                              // chains 0 .. 4096 from the prior
//! while !sampling.finished() {
//!     let mut encoder = device.create_command_encoder(&Default::default());
//!     sampling.record(&mut encoder, 10);                    // this frame's 10 steps
//!     present.record(&mut encoder);                         // the samples into the texture
//!     queue.submit([encoder.finish()]);                     // (the application draws, presents)
//! }
//! # Ok(()) }
//! ```
//!
//! While a `Sampling` lives the application must not write to the buffers it returns
//! (`samples`) or record its steps into two encoders at once; it must submit recorded
//! encoders in the order they were recorded. The engine installs the device's uncaptured-error
//! handler (`Device::on_uncaptured_error`) to report validation errors as `Result`s: an
//! application that installs its own afterwards receives them instead. Everything else about
//! the device (its limits, features, other resources) is left as it was.

mod present;
pub mod reference;

pub use present::{read_texture, Present, Presenter};

use crate::app::{Loaded, ModelSource};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::sample::{Runner, SampleRequest};

/// scoregen on an application's device: opens models and plans samplers there.
pub struct Engine {
    gpu: Gpu,
}

impl Engine {
    /// Adopt the application's device and queue (cloned handles; the application keeps its own).
    /// Request the adapter's limits (`adapter.limits()`) when creating the device: the MCMC
    /// samplers bind up to 10 storage buffers per kernel, more than WebGPU's default of 8.
    pub fn adopt(device: &wgpu::Device, queue: &wgpu::Queue) -> Engine {
        Engine { gpu: Gpu::from_wgpu(device.clone(), queue.clone()) }
    }

    /// The engine's view of the device (scoregen's lower-level calls take it).
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Open a model from any source the CLI accepts: a checkpoint path, `gmm:ring8`, `gmm:ncsn`,
    /// `gmm:FILE.toml` or `compose:FILE.toml`.
    pub fn open(&self, source: &str) -> Result<Model> {
        Ok(Model { loaded: Loaded::load(&self.gpu, &ModelSource::parse(source)?)? })
    }

    /// Plan `req.batch` chains of `model` under `req`'s fixed-step sampler (not rk45, whose
    /// steps depend on the run). `req.n` is not used: a `Sampling` draws one batch at a time.
    pub fn plan(&self, model: &Model, req: &SampleRequest) -> Result<Sampling> {
        let m = model.loaded.model.as_ref();
        let req = SampleRequest { n: req.batch, ..req.clone() };
        let runner = crate::sample::draw::runner(&self.gpu, m, &req)?;
        let sigma0 = runner.steps().iter().map(|(_, r)| r.sigma).find(|s| *s > 0.0).unwrap_or(0.0);
        let shape = m.shape().to_vec();
        Ok(Sampling { runner, done: 0, begun: false, sigma: sigma0, shape, images: m.images() })
    }

    /// A presenter writing `sampling`'s samples into the application's texture (`Present`).
    pub fn present(&self, sampling: &Sampling, texture: &wgpu::Texture, how: &Present) -> Result<Presenter> {
        Presenter::new(&self.gpu, sampling, texture, how)
    }

    /// Wait for the device to finish what was submitted, and report any error it raised.
    pub fn wait(&self) -> Result<()> {
        self.gpu.wait()?;
        self.gpu.check_errors()
    }
}

/// A model opened on the engine's device.
pub struct Model {
    loaded: Loaded,
}

impl Model {
    /// The shape of one sample ([2] for points, [C, H, W] for images).
    pub fn shape(&self) -> &[usize] {
        self.loaded.model.shape()
    }

    /// Whether samples are images with pixel values in [-1, 1].
    pub fn images(&self) -> bool {
        self.loaded.model.images()
    }

    /// The sampler settings the CLI would use for this model (a checkpoint's `[sample]` table,
    /// else the defaults), with the model's unconditional conditioning.
    pub fn request(&self) -> SampleRequest {
        let mut req = self.loaded.sample_defaults().request();
        req.conditions = self.loaded.conditions.clone();
        req
    }
}

/// A planned sampler: one batch of chains, advanced step by step inside the application's
/// frames (`record`) or run to the end (`run`). The samples live in `samples()`.
pub struct Sampling {
    runner: Runner<'static>,
    done: usize,
    begun: bool,
    sigma: f32,
    shape: Vec<usize>,
    images: bool,
}

impl Sampling {
    /// (Re)start the chains first_chain .. first_chain + chains() from step 0. Chain i's
    /// sample depends only on (seed, i): the CLI's `sample --seed S` draws the same numbers.
    /// Queue writes only; they reach the GPU before anything submitted afterwards.
    pub fn begin(&mut self, engine: &Engine, first_chain: usize) -> Result<()> {
        self.runner.begin(&engine.gpu, first_chain, None)?;
        self.done = 0;
        self.begun = true;
        Ok(())
    }

    /// Record the next `steps` steps (fewer at the end) into the application's encoder; returns
    /// how many were recorded. Nothing is created or uploaded: the commands are the plan's.
    pub fn record(&mut self, encoder: &mut wgpu::CommandEncoder, steps: usize) -> usize {
        assert!(self.begun, "Sampling::record before Sampling::begin");
        let end = (self.done + steps).min(self.total_steps());
        self.runner.encode_steps(encoder, self.done..end);
        let taken = end - self.done;
        self.advance(end);
        taken
    }

    /// Run the remaining steps as the CLI does (submissions of 256 steps) and wait.
    pub fn run(&mut self, engine: &Engine) -> Result<()> {
        assert!(self.begun, "Sampling::run before Sampling::begin");
        let total = self.total_steps();
        self.runner.submit_steps(&engine.gpu, self.done..total, 256, &mut |_, _| {})?;
        self.advance(total);
        engine.wait()
    }

    fn advance(&mut self, end: usize) {
        if let Some(r) = self.runner.steps()[..end].iter().rev().find(|(k, _)| k.evaluates()) {
            self.sigma = r.1.sigma;
        }
        self.done = end;
    }

    /// Steps in the whole program.
    pub fn total_steps(&self) -> usize {
        self.runner.steps().len()
    }

    /// Steps recorded since `begin`.
    pub fn steps_done(&self) -> usize {
        self.done
    }

    /// Whether every step has been recorded.
    pub fn finished(&self) -> bool {
        self.done == self.total_steps()
    }

    /// The noise level the model was last evaluated at (the first level before any step).
    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// Chains planned (samples per batch).
    pub fn chains(&self) -> usize {
        self.runner.model.batch
    }

    /// The shape of one sample.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether samples are images with pixel values in [-1, 1].
    pub fn images(&self) -> bool {
        self.images
    }

    /// The buffer holding the chains' current values, [chains, shape...] float32 in C order
    /// from offset 0 (`samples_bytes` long; the buffer may be longer). After the last step these
    /// are the samples. Read-only to the application.
    pub fn samples(&self) -> &wgpu::Buffer {
        self.runner.model.x().buffer().buffer()
    }

    /// Bytes of `samples()` that hold values.
    pub fn samples_bytes(&self) -> u64 {
        4 * (self.chains() * self.runner.model.numel()) as u64
    }

    /// Record a copy of the samples into the application's buffer (`COPY_DST` usage) at
    /// `offset`.
    pub fn copy_to(&self, encoder: &mut wgpu::CommandEncoder, dst: &wgpu::Buffer, offset: u64) -> Result<()> {
        if offset + self.samples_bytes() > dst.size() || !dst.usage().contains(wgpu::BufferUsages::COPY_DST) {
            return Err(Error::Invalid(format!(
                "the destination buffer ({} bytes, usage {:?}) cannot take {} bytes at offset {offset}; it needs \
                 COPY_DST and room for chains x sample size x 4 bytes",
                dst.size(),
                dst.usage(),
                self.samples_bytes()
            )));
        }
        encoder.copy_buffer_to_buffer(self.samples(), 0, dst, offset, self.samples_bytes());
        Ok(())
    }

    /// Read the samples to the host (waits for the device): [chains * sample size] values.
    pub fn read(&self, engine: &Engine) -> Result<Vec<f32>> {
        self.runner.model.x().to_vec(&engine.gpu)
    }
}
