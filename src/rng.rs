//! Random numbers on the host, and the table of streams every use of a run's seed draws from.
//!
//! GPU-side noise is Philox 4x32-10 (`ops::random`), keyed by (seed, stream, counter); the host
//! uses SplitMix64 (Steele, Lea & Flood 2014). Every consumer of a seed derives its own stream
//! here, through [`Stream`], so the uses within one command draw different numbers and no module
//! invents its own mixer. (`Batch(0)` and `Probes(0)` coincide; they belong to different commands,
//! training and evaluation. The derivations are those the engine always used, so runs reproduce
//! across versions.)
//!
//! | stream | generator | derivation from the run's seed `s` |
//! | --- | --- | --- |
//! | `Init` (parameter initialisation) | SplitMix64, raw state | `s` |
//! | `DsmNoise` (DSM's z, training) | Philox key, graph stream [`DSM_NOISE_STREAM`] | `s ^ 0x7a11` |
//! | `Dropout` (training masks) | Philox key, graph stream [`DROPOUT_STREAM`] | `s` |
//! | `Epoch(e)` (visiting order of epoch e) | HostRng | `s ^ 0xE90C_0000_0000 ^ e * 0x9E37_79B9` |
//! | `Batch(k)` (batch k: items, noise levels, toy points) | HostRng | `s ^ k * 0xD1B5_4A32_D192_ED03` |
//! | `Probes(i)` (chain i's divergence probes) | HostRng | `s ^ i * 0x9E37_79B9_7F4A_7C15` |
//! | `Truth(j)` (eval's j-th ground-truth draw) | HostRng | `s ^ [0xC0FFEE, 0xBEEF, 0x7123_0002, ..][j]` |
//! | `NllPoints` (data points of eval's likelihood) | HostRng | `0xDA7A` (fixed: the same points for every seed) |
//! | `Dequantise` (uniform dequantisation of those points) | HostRng | `0xDE0` (fixed) |
//! | `Moments` (moment estimate of sampled data sources) | HostRng | `0x5EC0_0D` (fixed) |
//! | `NceFit` (data NCE's Gaussian noise is fitted to) | HostRng | `s ^ 0x0CE5_F17` |
//! | `FisherPoints(j)` (eval's Fisher divergence, level j) | HostRng | `s ^ 0xF15E ^ j * 0x9E37_79B9_7F4A_7C15` |
//! | SSM's projections (training) | Philox key as `DsmNoise`, graph stream [`PROJECTION_STREAM`] | |
//! | NCE's noise samples (training) | Philox key as `DsmNoise`, graph stream [`NCE_NOISE_STREAM`] | |
//!
//! Sampler noise needs no entry: chain i's noise at step k is Philox (seed, stream i, counter
//! k * blocks), a function of (seed, i, k) only, whatever the batch.

/// Golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Philox graph stream of DSM's noise z (the graph adds its op id in the high bits).
pub const DSM_NOISE_STREAM: u64 = 0x5eed;
/// Philox graph stream of sliced score matching's projections (training; key as DSM's z).
pub const PROJECTION_STREAM: u64 = 0x5110;
/// Philox graph stream of NCE's noise samples (training; key as DSM's z).
pub const NCE_NOISE_STREAM: u64 = 0x0ce5;
/// Philox graph stream of dropout masks.
pub const DROPOUT_STREAM: u64 = 0;

/// SplitMix64: a 64-bit state advanced by the golden ratio and finalised by two xor-shift
/// multiplies; passes BigCrush, and any state is a valid seed.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Start at `state` as given (no whitening).
    pub fn new(state: u64) -> Self {
        SplitMix64 { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) on a grid of 2^-24 (exact in f32).
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in (0, 1) on a grid of 2^-24, offset by half a step (never 0: safe under ln).
    pub fn open_unit_24(&mut self) -> f64 {
        ((self.next_u64() >> 40) as f64 + 0.5) / (1u64 << 24) as f64
    }
}

/// The host generator of data, batches and evaluation draws: SplitMix64 from a whitened seed,
/// with f64 uniforms on a grid of 2^-53.
#[derive(Clone, Debug)]
pub struct HostRng {
    inner: SplitMix64,
}

impl HostRng {
    /// The host generator of `seed` (whitened first).
    pub fn new(seed: u64) -> Self {
        HostRng { inner: SplitMix64::new(seed ^ 0x6A09_E667_F3BC_C909) }
    }
    /// The generator of `stream` under the run's seed.
    pub fn stream(seed: u64, stream: Stream) -> Self {
        HostRng::new(stream.derive(seed))
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// One use of a run's seed (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Weight initialisation.
    Init,
    /// The noise of denoising score matching (GPU counter base).
    DsmNoise,
    /// Dropout masks (GPU counter base).
    Dropout,
    /// The shuffle of epoch i.
    Epoch(u64),
    /// The draws of batch i (toys, label dropout).
    Batch(u64),
    /// Hutchinson probes of batch i.
    Probes(u64),
    /// Ground-truth draws for metric i.
    Truth(u64),
    /// The points a likelihood is measured on.
    NllPoints,
    /// Uniform dequantisation noise of images.
    Dequantise,
    /// The sample the data's moments are measured on.
    Moments,
    /// The data NCE's noise distribution is fitted to.
    NceFit,
    /// Fresh points of eval's Fisher divergence at its j-th level.
    FisherPoints(u64),
    /// The database entry chain i of a retrieval-conditioned run queries.
    Query(u64),
}

impl Stream {
    /// The seed of this stream under the run's seed `s`.
    pub fn derive(self, s: u64) -> u64 {
        match self {
            Stream::Init | Stream::Dropout => s,
            Stream::DsmNoise => s ^ 0x7a11,
            Stream::Epoch(e) => s ^ 0xE90C_0000_0000 ^ e.wrapping_mul(0x9E37_79B9),
            Stream::Batch(k) => s ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03),
            Stream::Probes(i) => s ^ i.wrapping_mul(GOLDEN),
            Stream::Truth(0) => s ^ 0xC0FFEE,
            Stream::Truth(1) => s ^ 0xBEEF,
            Stream::Truth(j) => s ^ (0x7123_0000 + j),
            Stream::NllPoints => 0xDA7A,
            Stream::Dequantise => 0xDE0,
            Stream::Moments => 0x005E_C00D,
            Stream::NceFit => s ^ 0x00CE_5F17,
            Stream::FisherPoints(j) => s ^ 0xF15E ^ j.wrapping_mul(GOLDEN),
            Stream::Query(i) => s ^ 0x9E4E_0000_0000 ^ i.wrapping_mul(0xA24B_AED4_963E_E407),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // Vigna's splitmix64.c from state 1234567: the first outputs.
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn host_streams_of_one_command_are_distinct() {
        let s = 42;
        // Training's host streams, then evaluation's.
        for all in [
            [Stream::Epoch(0), Stream::Epoch(1), Stream::Moments]
                .into_iter()
                .chain((0..8).map(Stream::Batch))
                .collect(),
            (0..8)
                .map(Stream::Probes)
                .chain((0..8).map(Stream::Truth))
                .chain([Stream::NllPoints, Stream::Dequantise])
                .collect::<Vec<_>>(),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for st in all {
                assert!(seen.insert(st.derive(s)), "{st:?} repeats another stream's seed");
            }
        }
    }

    #[test]
    fn gpu_streams_differ_from_each_other() {
        assert_ne!((Stream::DsmNoise.derive(7), DSM_NOISE_STREAM), (Stream::Dropout.derive(7), DROPOUT_STREAM));
    }
}
