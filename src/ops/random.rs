//! Counter-based random numbers (Philox-4x32-10), identical on every adapter and for every
//! batch split, with a bit-exact CPU twin (shaders/random.wgsl).

use super::kernels::slots::random as R;
use super::{dim, grid};
use crate::error::Result;
use crate::gpu::Recorder;
use crate::tensor::Tensor;

/// The distributions drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    /// (0, 1), exact in f32.
    Uniform,
    /// Standard normal (Box-Muller).
    Normal,
    /// Raw 32-bit words, stored bit-for-bit in the tensor.
    Bits,
}

/// Where a draw sits in the random stream: element i of the result is a function of
/// (seed, stream, counter, i) only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RngKey {
    /// The run's seed.
    pub seed: u64,
    /// E.g. the sample index: one stream per sample keeps samples independent of batching.
    pub stream: u64,
    /// E.g. step * draws_per_step + draw; advance by ceil(n / 4) blocks per draw of n.
    pub counter: u64,
}

fn key_params(n: usize, key: RngKey) -> Result<super::kernels::RandomParams> {
    Ok(super::kernels::RandomParams {
        n: dim(n, "random elements")?,
        seed_lo: key.seed as u32,
        seed_hi: (key.seed >> 32) as u32,
        stream_lo: key.stream as u32,
        stream_hi: (key.stream >> 32) as u32,
        ctr_lo: key.counter as u32,
        ctr_hi: (key.counter >> 32) as u32,
        mode: 0,
    })
}

fn mode(dist: Dist) -> f64 {
    match dist {
        Dist::Uniform => 0.0,
        Dist::Normal => 1.0,
        Dist::Bits => 2.0,
    }
}

/// Like `random`, with the counter advanced on the GPU by `steps[0]` (a plan's replay count)
/// times the blocks one draw of `out` takes: a new draw each replay, no host write.
pub fn random_stepped_into(rec: &mut Recorder, key: RngKey, dist: Dist, steps: &Tensor, out: &Tensor) -> Result<()> {
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    let pipe = rec.pipeline("random", "random_stepped", &[("MODE", mode(dist))])?;
    let pi = rec.params(&key_params(n, key)?);
    let g = grid(rec, n, 256)?;
    rec.dispatch_at(&pipe, Some(pi), &[(R::OUT, out.buffer()), (R::STEPS, steps.buffer())], g)
}

/// Add one to `steps[0]` (appended to plans that draw random numbers).
pub fn plan_tick(rec: &mut Recorder, steps: &Tensor) -> Result<()> {
    let pipe = rec.pipeline("random", "plan_tick", &[])?;
    rec.dispatch_at(&pipe, None, &[(R::STEPS, steps.buffer())], [1, 1, 1])
}

/// A tensor of `shape` drawn from `dist` at `key`.
pub fn random(rec: &mut Recorder, shape: &[usize], key: RngKey, dist: Dist) -> Result<Tensor> {
    let out = Tensor::empty(rec.gpu, shape)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let pipe = rec.pipeline("random", "random", &[("MODE", mode(dist))])?;
    let pi = rec.params(&key_params(n, key)?);
    let g = grid(rec, n, 256)?;
    rec.dispatch(&pipe, Some(pi), &[out.buffer()], g)?;
    Ok(out)
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox-4x32-10 block function.
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = M0 as u64 * c[0] as u64;
        let p1 = M1 as u64 * c[2] as u64;
        c = [(p1 >> 32) as u32 ^ c[1] ^ k[0], p1 as u32, (p0 >> 32) as u32 ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

fn to_unit(x: u32) -> f32 {
    (x >> 8) as f32 * 5.960_464_5e-8 + 2.980_232_2e-8
}

/// CPU twin of `random`: element i for `key`.
pub fn random_ref(n: usize, key: RngKey, dist: Dist) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let blk = (i / 4) as u64;
            let c = key.counter.wrapping_add(blk);
            // The GPU adds the block index with a 32-bit carry into the high word, the same as
            // this 64-bit add for blocks below 2^32.
            let r = philox4x32(
                [c as u32, (c >> 32) as u32, key.stream as u32, (key.stream >> 32) as u32],
                [key.seed as u32, (key.seed >> 32) as u32],
            );
            let w = i % 4;
            match dist {
                Dist::Bits => f32::from_bits(r[w]),
                Dist::Uniform => to_unit(r[w]),
                Dist::Normal => {
                    let pair = w / 2;
                    let (u0, u1) = (to_unit(r[pair * 2]) as f64, to_unit(r[pair * 2 + 1]) as f64);
                    let rad = (-2.0 * u0.ln()).sqrt();
                    let th = 2.0 * std::f64::consts::PI * u1;
                    (if w % 2 == 0 { rad * th.cos() } else { rad * th.sin() }) as f32
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::philox4x32;
    /// Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32_10).
    #[test]
    fn philox_known_answers() {
        assert_eq!(philox4x32([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox4x32([0xffffffff; 4], [0xffffffff; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}
