//! Pooled GPU buffers. Sizes are rounded up to classes (powers of two and the midpoints
//! between them, so at most 33% waste) and dropped buffers are reused. A buffer dropped while
//! work is being recorded becomes reusable only after the next submission, so a later upload
//! (`queue.write_buffer`, which lands before the whole next submission) can never overwrite
//! data that recorded work still reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// What a pooled buffer is bound as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    /// Tensors: storage, copy source and destination.
    Storage,
    /// Small parameter blocks bound as uniforms.
    Uniform,
}

impl Usage {
    fn wgpu(self) -> wgpu::BufferUsages {
        match self {
            Usage::Storage => wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            Usage::Uniform => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        }
    }
}

/// Round a byte size up to its pool class (min 256 B).
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let p = b.next_power_of_two();
    let mid = p / 2 + p / 4;
    if b <= mid {
        mid
    } else {
        p
    }
}

#[derive(Default)]
struct PoolState {
    free: HashMap<(Usage, u64), Vec<wgpu::Buffer>>,
    /// Freed since the last submission; moved to `free` by `PoolShared::on_submit`.
    pending: Vec<(Usage, u64, wgpu::Buffer)>,
    live_bytes: u64,
    peak_bytes: u64,
    created: u64,
}

pub(crate) struct PoolShared {
    state: Mutex<PoolState>,
}

/// A buffer from the pool; goes back to the pool when dropped.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    usage: Usage,
    class: u64,
    /// Bytes the caller asked for (the buffer may be larger).
    pub len: u64,
    pool: Weak<PoolShared>,
}

impl PooledBuffer {
    /// The wgpu buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().unwrap()
    }
    /// Binding of exactly the requested bytes.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: 0,
            size: std::num::NonZeroU64::new(self.len.max(4)),
        })
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(b), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            let mut s = pool.state.lock().unwrap();
            s.live_bytes -= self.class;
            s.pending.push((self.usage, self.class, b));
        }
    }
}

/// Buffers reused by size and usage across submissions (freed ones return to the pool once
/// the GPU is past the submissions that used them).
pub struct BufferPool {
    shared: Arc<PoolShared>,
}

/// Counters for tests and `--profile`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    /// Bytes in buffers handed out now.
    pub live_bytes: u64,
    /// The most bytes handed out at once.
    pub peak_bytes: u64,
    /// Buffers created since the pool began.
    pub buffers_created: u64,
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> Self {
        BufferPool { shared: Arc::new(PoolShared { state: Mutex::new(PoolState::default()) }) }
    }

    /// A buffer of at least `bytes` bytes (contents undefined).
    pub fn get(&self, device: &wgpu::Device, usage: Usage, bytes: u64) -> PooledBuffer {
        let class = size_class(bytes);
        let mut s = self.shared.state.lock().unwrap();
        let reused = s.free.get_mut(&(usage, class)).and_then(|v| v.pop());
        let buffer = match reused {
            Some(b) => b,
            None => {
                s.created += 1;
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("scoregen pool"),
                    size: class,
                    usage: usage.wgpu(),
                    mapped_at_creation: false,
                })
            }
        };
        s.live_bytes += class;
        s.peak_bytes = s.peak_bytes.max(s.live_bytes);
        PooledBuffer { buffer: Some(buffer), usage, class, len: bytes, pool: Arc::downgrade(&self.shared) }
    }

    /// Called after every queue submission: buffers freed before it become reusable.
    pub fn on_submit(&self) {
        let mut s = self.shared.state.lock().unwrap();
        let pending = std::mem::take(&mut s.pending);
        for (u, c, b) in pending {
            s.free.entry((u, c)).or_default().push(b);
        }
    }

    /// Its counters.
    pub fn stats(&self) -> PoolStats {
        let s = self.shared.state.lock().unwrap();
        PoolStats { live_bytes: s.live_bytes, peak_bytes: s.peak_bytes, buffers_created: s.created }
    }

    /// Release every free buffer back to the driver.
    pub fn trim(&self) {
        let mut s = self.shared.state.lock().unwrap();
        s.free.clear();
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;
    #[test]
    fn size_classes_cover_and_waste_at_most_a_third() {
        for b in [1u64, 255, 256, 257, 383, 384, 385, 1000, 4096, 5000, 1 << 20, (1 << 20) + 1] {
            let c = size_class(b);
            assert!(c >= b, "{b} -> {c}");
            if b >= 256 {
                assert!(c as f64 <= b as f64 * 1.5 + 1.0, "{b} -> {c}");
            }
        }
    }
}
