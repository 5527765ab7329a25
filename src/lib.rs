//! scoregen: score-based generative models trained and sampled on the GPU through
//! hand-written WGSL compute shaders on wgpu.
//!
//! An application that owns a `wgpu::Device` starts at [`embed`]; the layers below it, from
//! the bottom: [`gpu`] (device, buffers, recording), [`tensor`], [`ops`] (the kernels),
//! [`graph`] (autodiff), [`nn`], [`optim`], [`dist`], [`io`], [`score`] / [`data`] /
//! [`metrics`] / [`retrieval`], [`model`], [`sample`]; then the CLI's orchestration
//! ([`config`], [`train`], [`app`], [`bench`]).

// Shapes are written as in the papers and the shaders, `[B, D]`, `[N, k]`: notation, not links.
#![allow(rustdoc::broken_intra_doc_links)]
// Every public item is documented (`cargo doc` builds without warnings in CI).
#![deny(missing_docs)]

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

/// The README's Rust examples, compiled by `cargo test --doc` (and `cargo test`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use gpu::{Gpu, GpuOptions, Recorder};
pub use tensor::Tensor;
