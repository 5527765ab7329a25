//! Shared test helpers: one GPU per test binary, seeded random data, tolerance checks.
#![allow(dead_code)]

use scoregen::{Gpu, GpuOptions};
use std::sync::OnceLock;

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let opts = GpuOptions::from_env().expect("SCOREGEN_BACKEND/ADAPTER");
        Gpu::new(&opts).unwrap_or_else(|e| panic!("tests need an adapter (lavapipe is enough): {e}"))
    })
}

/// Seeded test data from the library's SplitMix64.
pub struct Rng(scoregen::rng::SplitMix64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(scoregen::rng::SplitMix64::new(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.0.unit_f32()
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Integer in [lo, hi].
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// |got - want| <= atol + rtol |want| everywhere; on failure lists the first mismatches.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs {}", got.len(), want.len());
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| {
            let close = (*g - *w).abs() <= atol + rtol * w.abs();
            let both_nan = g.is_nan() && w.is_nan();
            !close && !both_nan
        })
        .take(5)
        .map(|(i, (g, w))| format!("[{i}] got {g} want {w}"))
        .collect();
    assert!(bad.is_empty(), "{what}: mismatches (atol {atol}, rtol {rtol}): {}", bad.join(", "));
}

/// A fresh, empty folder for one test (name and process id in its name).
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scoregen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run the scoregen binary: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_scoregen")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}
