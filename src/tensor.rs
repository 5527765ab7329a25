//! GPU tensors: an f32 buffer from the pool plus a static row-major shape.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, PooledBuffer, Usage};
use std::sync::Arc;

/// A float32 array on the GPU: a pooled buffer and a shape (C order).
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

/// The element count of `shape` (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The element count of `shape`, or None where it overflows (shapes read from files).
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl Tensor {
    /// An uninitialised tensor; errors if the device cannot hold it in one binding.
    pub fn empty(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let bytes = checked_numel(shape)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| Error::Limit(format!("tensor shape {shape:?} overflows")))? as u64;
        let max = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        if bytes > max {
            return Err(Error::Limit(format!(
                "tensor of shape {shape:?} needs {bytes} bytes; this device binds at most {max} bytes per buffer"
            )));
        }
        let buf = gpu.pool.get(&gpu.device, Usage::Storage, bytes);
        Ok(Tensor { buf: Arc::new(buf), shape: shape.to_vec() })
    }

    /// A tensor over an existing buffer (plans share buffers between nodes by liveness).
    pub fn view(buf: Arc<PooledBuffer>, shape: &[usize]) -> Result<Tensor> {
        let need = numel(shape) as u64 * 4;
        if need > buf.len {
            return Err(Error::Shape(format!(
                "a view of shape {shape:?} needs {need} bytes, the buffer has {}",
                buf.len
            )));
        }
        Ok(Tensor { buf, shape: shape.to_vec() })
    }

    /// Upload `data` as a tensor of `shape` (refused when the counts differ).
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != data.len() {
            return Err(Error::Shape(format!("{} values do not fill shape {shape:?}", data.len())));
        }
        let t = Tensor::empty(gpu, shape)?;
        if !data.is_empty() {
            gpu.queue.write_buffer(t.buf.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// Raw u32 data (for the RNG and index tensors), same storage.
    pub fn from_u32(gpu: &Gpu, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        let f: &[f32] = bytemuck::cast_slice(data);
        Tensor::from_slice(gpu, f, shape)
    }

    /// A tensor of `shape` filled with zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(gpu, &vec![0.0; numel(shape)], shape)
    }

    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Its element count.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// The pooled buffer behind it (`.buffer()` is the plain `wgpu::Buffer`).
    pub fn buffer(&self) -> &Arc<PooledBuffer> {
        &self.buf
    }

    /// Same data, another shape with the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::Shape(format!("cannot reshape {:?} to {shape:?}", self.shape)));
        }
        Ok(Tensor { buf: self.buf.clone(), shape: shape.to_vec() })
    }

    /// Copy to the host (submits and waits).
    pub fn to_vec(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let bytes = self.numel() as u64 * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scoregen readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(self.buf.buffer(), 0, &staging, 0, bytes);
        gpu.queue.submit(Some(enc.finish()));
        gpu.pool.on_submit();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("readback callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))?;
        let view = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("readback map failed: {e}")))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        gpu.check_errors()?;
        Ok(out)
    }

    /// Read back as u32 words (index tensors: the kNN's neighbours, counters); waits.
    pub fn to_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        Ok(self.to_vec(gpu)?.into_iter().map(f32::to_bits).collect())
    }
}
