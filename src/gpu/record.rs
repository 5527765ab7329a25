//! Command recording and batched submission. Ops append dispatches to a `Recorder`; nothing
//! reaches the GPU until `submit`, so a whole forward pass (or many sampler steps) goes out as
//! one submission. Binding convention for every kernel: binding 0 is the uniform parameter
//! block (when the kernel has one), bindings 1.. are storage buffers in the order given.

use super::context::Gpu;
use super::pipeline::{Pipeline, PipelineKey};
use super::pool::{PooledBuffer, Usage};
use crate::error::{Error, Result};
use std::sync::Arc;

/// Records dispatches and copies into one command encoder (or captures them as steps for a
/// plan); nothing reaches the GPU before `submit`.
pub struct Recorder<'g> {
    /// The device recorded for.
    pub gpu: &'g Gpu,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Parameter blocks alive until the submission is made.
    keep: Vec<PooledBuffer>,
    /// Every buffer bound by recorded work, held until submission so that no other thread can
    /// recycle (and re-upload into) it while this recording still reads it.
    held: Vec<Arc<PooledBuffer>>,
    /// Pipeline labels of profiled dispatches, in query-pair order.
    profiled: Vec<String>,
    /// Dispatches recorded so far.
    pub dispatches: u64,
    /// Capture mode (plans): dispatches are kept as steps instead of being encoded.
    capture: Option<Vec<Step>>,
    /// Kernel configurations must not depend on the batch size (sampling plans: chain i's
    /// numbers must be the same for any batch): matmuls take one tile configuration for every
    /// size instead of the autotune's small/large pair.
    pub batch_invariant: bool,
}

/// One recorded command with everything made at plan time; replaying it creates nothing.
#[derive(Clone)]
pub enum Step {
    /// A dispatch of a compute pipeline.
    Dispatch {
        /// The pipeline.
        pipeline: Arc<Pipeline>,
        /// Its bindings, made at plan time.
        bind: wgpu::BindGroup,
        /// The workgroup grid.
        groups: [u32; 3],
    },
    /// A buffer-to-buffer copy.
    Copy {
        /// The source buffer.
        src: Arc<PooledBuffer>,
        /// The byte offset in it.
        src_off: u64,
        /// The destination buffer.
        dst: Arc<PooledBuffer>,
        /// The byte offset in it.
        dst_off: u64,
        /// Bytes copied.
        bytes: u64,
    },
}

/// What a capture produced: the steps and the buffers they bind (kept alive by the plan).
pub struct Captured {
    /// The commands, in order.
    pub steps: Vec<Step>,
    /// The parameter blocks they bind.
    pub params: Vec<PooledBuffer>,
    /// The buffers they bind (kept from the pool while the plan lives).
    pub held: Vec<Arc<PooledBuffer>>,
}

/// Encode captured steps into a command encoder the caller owns (an application's frame):
/// dispatches go into the open compute pass `pass` (begun when needed), copies end it.
pub fn encode_steps(encoder: &mut wgpu::CommandEncoder, pass: &mut Option<wgpu::ComputePass<'static>>, steps: &[Step]) {
    for st in steps {
        match st {
            Step::Dispatch { pipeline, bind, groups } => {
                let p = pass.get_or_insert_with(|| {
                    encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some("scoregen"),
                            timestamp_writes: None,
                        })
                        .forget_lifetime()
                });
                p.set_pipeline(&pipeline.pipeline);
                p.set_bind_group(0, bind, &[]);
                p.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
            Step::Copy { src, src_off, dst, dst_off, bytes } => {
                *pass = None;
                encoder.copy_buffer_to_buffer(src.buffer(), *src_off, dst.buffer(), *dst_off, *bytes);
            }
        }
    }
}

/// Split `n` workgroups into a grid no dimension of which exceeds `max` (kernels rebuild the
/// linear index as `wg.x + wg.y * num_workgroups.x` and skip indices >= n).
pub fn fold_groups(n: u32, max: u32) -> Result<[u32; 3]> {
    if n <= max {
        return Ok([n.max(1), 1, 1]);
    }
    let y = n.div_ceil(max);
    if y > max {
        return Err(Error::Limit(format!(
            "{n} workgroups exceed {max} x {max}, the device's dispatch grid; split the work"
        )));
    }
    Ok([max, y, 1])
}

impl<'g> Recorder<'g> {
    /// A recorder with a fresh command encoder.
    pub fn new(gpu: &'g Gpu) -> Self {
        let encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("scoregen") });
        Recorder {
            gpu,
            encoder: Some(encoder),
            pass: None,
            keep: Vec::new(),
            held: Vec::new(),
            profiled: Vec::new(),
            batch_invariant: false,
            dispatches: 0,
            capture: None,
        }
    }

    /// A recorder that captures steps for a plan instead of encoding them.
    pub fn capturing(gpu: &'g Gpu) -> Self {
        let mut r = Recorder::new(gpu);
        r.capture = Some(Vec::new());
        r
    }

    /// End a capture: the steps and every buffer they need.
    pub fn into_captured(mut self) -> Captured {
        Captured {
            steps: self.capture.take().unwrap_or_default(),
            params: std::mem::take(&mut self.keep),
            held: std::mem::take(&mut self.held),
        }
    }

    /// Encode previously captured steps (no allocation, no bind group, no pipeline).
    /// In capture mode the steps are appended to the capture (a plan inside a sampler step).
    pub fn replay(&mut self, steps: &[Step]) {
        if let Some(cap) = self.capture.as_mut() {
            cap.extend(steps.iter().cloned());
            return;
        }
        for st in steps {
            match st {
                Step::Dispatch { pipeline, bind, groups } => self.dispatch_bound(pipeline, bind, *groups),
                Step::Copy { src, src_off, dst, dst_off, bytes } => {
                    self.copy(src.buffer(), *src_off, dst.buffer(), *dst_off, *bytes)
                }
            }
        }
    }

    /// The pipeline of `entry` in shader `shader` with these override constants (cached).
    pub fn pipeline(
        &self,
        shader: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Pipeline>> {
        self.gpu.pipelines.get(&self.gpu.device, &PipelineKey::new(shader, entry, constants))
    }

    /// Upload a parameter block for the next dispatch.
    pub fn params<T: bytemuck::Pod>(&mut self, value: &T) -> usize {
        let bytes = bytemuck::bytes_of(value);
        let buf = self.gpu.pool.get(&self.gpu.device, Usage::Uniform, bytes.len() as u64);
        self.gpu.queue.write_buffer(buf.buffer(), 0, bytes);
        self.keep.push(buf);
        self.keep.len() - 1
    }

    fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Record one dispatch. `params`: index returned by `params`, bound at 0; `storage` bound
    /// at 1, 2, ... `groups`: workgroup grid (see `fold_groups`).
    pub fn dispatch(
        &mut self,
        pipe: &Arc<Pipeline>,
        params: Option<usize>,
        storage: &[&Arc<PooledBuffer>],
        groups: [u32; 3],
    ) -> Result<()> {
        let at: Vec<(u32, &Arc<PooledBuffer>)> = storage.iter().enumerate().map(|(k, b)| (k as u32 + 1, *b)).collect();
        self.dispatch_at(pipe, params, &at, groups)
    }

    /// Like `dispatch`, with explicit binding numbers (for entry points that use a subset of
    /// their file's bindings).
    pub fn dispatch_at(
        &mut self,
        pipe: &Arc<Pipeline>,
        params: Option<usize>,
        storage: &[(u32, &Arc<PooledBuffer>)],
        groups: [u32; 3],
    ) -> Result<()> {
        let max = self.gpu.max_groups_per_dim();
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Limit(format!(
                "dispatch {groups:?} of {} exceeds {max} workgroups per dimension",
                pipe.label
            )));
        }
        let maxsb = self.gpu.limits.max_storage_buffers_per_shader_stage as usize;
        if storage.len() > maxsb {
            return Err(Error::Limit(format!(
                "{} needs {} storage buffers, the device allows {maxsb}",
                pipe.label,
                storage.len()
            )));
        }
        let mut entries = Vec::with_capacity(storage.len() + 1);
        if let Some(i) = params {
            entries.push(wgpu::BindGroupEntry { binding: 0, resource: self.keep[i].binding() });
        }
        for (k, b) in storage {
            entries.push(wgpu::BindGroupEntry { binding: *k, resource: b.binding() });
        }
        self.held.extend(storage.iter().map(|(_, b)| Arc::clone(b)));
        let bind = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.layout,
            entries: &entries,
        });
        self.gpu.bind_groups_created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.capture.as_mut() {
            Some(steps) => steps.push(Step::Dispatch { pipeline: Arc::clone(pipe), bind, groups }),
            None => self.dispatch_bound(pipe, &bind, groups),
        }
        Ok(())
    }

    /// Record a dispatch with a bind group made earlier (plans replay these).
    pub fn dispatch_bound(&mut self, pipe: &Pipeline, bind: &wgpu::BindGroup, groups: [u32; 3]) {
        self.dispatches += 1;
        let profiling = self.gpu.profiler.as_ref().map(|p| p.lock().unwrap().enabled()).unwrap_or(false);
        if profiling {
            self.end_pass();
            let prof = self.gpu.profiler.as_ref().unwrap();
            let prof = prof.lock().unwrap();
            let idx = self.profiled.len() as u32;
            if idx * 2 + 2 > prof.capacity() {
                drop(prof);
                // Query set full: flush what we have and continue in a fresh encoder.
                self.flush();
                return self.dispatch_bound(pipe, bind, groups);
            }
            let enc = self.encoder.as_mut().unwrap();
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&pipe.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: prof.query_set(),
                    beginning_of_pass_write_index: Some(idx * 2),
                    end_of_pass_write_index: Some(idx * 2 + 1),
                }),
            });
            pass.set_pipeline(&pipe.pipeline);
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            drop(pass);
            self.profiled.push(pipe.profile_label.clone());
            return;
        }
        if self.pass.is_none() {
            let enc = self.encoder.as_mut().unwrap();
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("scoregen"), timestamp_writes: None });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().unwrap();
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Copy bytes between buffers (ends the current compute pass).
    pub fn copy(&mut self, src: &wgpu::Buffer, src_off: u64, dst: &wgpu::Buffer, dst_off: u64, bytes: u64) {
        self.end_pass();
        self.encoder.as_mut().unwrap().copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
    }

    /// Copy bytes between pooled buffers; captured as a step in capture mode. Offsets and
    /// sizes are multiples of 4.
    pub fn copy_buffers(
        &mut self,
        src: &Arc<PooledBuffer>,
        src_off: u64,
        dst: &Arc<PooledBuffer>,
        dst_off: u64,
        bytes: u64,
    ) {
        if bytes == 0 {
            return;
        }
        self.held.extend([Arc::clone(src), Arc::clone(dst)]);
        match self.capture.as_mut() {
            Some(steps) => {
                steps.push(Step::Copy { src: Arc::clone(src), src_off, dst: Arc::clone(dst), dst_off, bytes })
            }
            None => self.copy(src.buffer(), src_off, dst.buffer(), dst_off, bytes),
        }
    }

    /// Submit what was recorded and start a new encoder; returns the submission index.
    pub fn flush(&mut self) -> wgpu::SubmissionIndex {
        self.end_pass();
        let mut enc = self.encoder.take().unwrap();
        let resolve = if !self.profiled.is_empty() {
            let prof = self.gpu.profiler.as_ref().unwrap();
            Some(prof.lock().unwrap().resolve(&self.gpu.device, &mut enc, self.profiled.len() as u32))
        } else {
            None
        };
        let idx = self.gpu.queue.submit(Some(enc.finish()));
        self.keep.clear();
        self.held.clear();
        self.gpu.pool.on_submit();
        if let Some(staging) = resolve {
            let labels = std::mem::take(&mut self.profiled);
            let prof = self.gpu.profiler.as_ref().unwrap();
            prof.lock().unwrap().collect(&self.gpu.device, &self.gpu.queue, staging, &labels);
        }
        self.encoder =
            Some(self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("scoregen") }));
        idx
    }

    /// Submit everything recorded; does not wait.
    pub fn submit(mut self) -> Result<()> {
        self.flush();
        self.gpu.check_errors()
    }

    /// Submit and wait for completion.
    pub fn finish(self) -> Result<()> {
        let gpu = self.gpu;
        self.submit()?;
        gpu.wait()?;
        gpu.check_errors()
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        // A recorder dropped without submit (e.g. an op returned an error): end the pass so the
        // encoder can be discarded cleanly.
        self.pass = None;
    }
}
