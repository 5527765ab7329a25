//! scoregen: score-based generative models trained and sampled on the GPU through
//! hand-written WGSL compute shaders on wgpu.

pub mod app;
pub mod bench;
pub mod config;
pub mod data;
pub mod dist;
pub mod embed;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod progress;
pub mod retrieval;
pub mod rng;
pub mod sample;
pub mod score;
pub mod shaders;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, Recorder};
pub use tensor::Tensor;
