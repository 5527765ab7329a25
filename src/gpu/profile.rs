//! Timestamp-query profiling (`--profile`). Where the adapter has `TIMESTAMP_QUERY`, every
//! dispatch runs in its own compute pass with begin/end timestamps; the times are summed per
//! pipeline and printed by `report`. Where it does not, profiling is reported as unavailable
//! and everything else runs unchanged.

use std::collections::BTreeMap;

const CAPACITY: u32 = 4096; // queries = 2 per dispatch

/// Timestamp queries around every dispatch (`--profile`), summed per kernel.
pub struct Profiler {
    set: Option<wgpu::QuerySet>,
    resolve: Option<wgpu::Buffer>,
    period_ns: f64,
    /// label -> (dispatch count, total ns)
    totals: BTreeMap<String, (u64, f64)>,
}

impl Profiler {
    /// A profiler, enabled where the device has timestamp queries.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, features: wgpu::Features) -> Self {
        if !features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Profiler { set: None, resolve: None, period_ns: 0.0, totals: BTreeMap::new() };
        }
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("scoregen profile"),
            ty: wgpu::QueryType::Timestamp,
            count: CAPACITY,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scoregen profile resolve"),
            size: CAPACITY as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Profiler {
            set: Some(set),
            resolve: Some(resolve),
            period_ns: queue.get_timestamp_period() as f64,
            totals: BTreeMap::new(),
        }
    }

    /// Whether the device supports the queries.
    pub fn enabled(&self) -> bool {
        self.set.is_some()
    }
    /// Queries one resolve holds (two per dispatch).
    pub fn capacity(&self) -> u32 {
        CAPACITY
    }
    /// The query set dispatches write into.
    pub fn query_set(&self) -> &wgpu::QuerySet {
        self.set.as_ref().unwrap()
    }

    /// Record the resolve of `n` query pairs; returns the staging buffer to read after submit.
    pub fn resolve(&mut self, device: &wgpu::Device, enc: &mut wgpu::CommandEncoder, n: u32) -> wgpu::Buffer {
        let resolve = self.resolve.as_ref().unwrap();
        enc.resolve_query_set(self.query_set(), 0..n * 2, resolve, 0);
        // Staging buffers are made per flush: profiling is a diagnostic mode, not the hot path.
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scoregen profile staging"),
            size: n as u64 * 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(resolve, 0, &staging, 0, n as u64 * 16);
        staging
    }

    /// Read resolved timestamps back and add them to the kernels named in `labels`.
    pub fn collect(&mut self, device: &wgpu::Device, _queue: &wgpu::Queue, staging: wgpu::Buffer, labels: &[String]) {
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        let Ok(data) = slice.get_mapped_range() else { return };
        let ticks: &[u64] = bytemuck::cast_slice(&data);
        for (i, label) in labels.iter().enumerate() {
            let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * self.period_ns;
            let e = self.totals.entry(label.clone()).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += dt;
        }
    }

    /// Forget the times summed so far (a benchmark profiling its parts one at a time).
    pub fn clear(&mut self) {
        self.totals.clear();
    }

    /// Per-kernel table, most expensive first.
    pub fn report(&self) -> String {
        if !self.enabled() {
            return "profile: this adapter has no timestamp queries; no per-kernel GPU times".into();
        }
        let total: f64 = self.totals.values().map(|v| v.1).sum();
        let mut rows: Vec<_> = self.totals.iter().collect();
        rows.sort_by(|a, b| b.1 .1.partial_cmp(&a.1 .1).unwrap());
        let mut s = format!("{:<40} {:>8} {:>12} {:>12} {:>6}\n", "kernel", "calls", "total ms", "mean us", "%");
        for (label, (n, ns)) in rows {
            s += &format!(
                "{:<40} {:>8} {:>12.3} {:>12.1} {:>6.1}\n",
                label,
                n,
                ns / 1e6,
                ns / 1e3 / *n as f64,
                100.0 * ns / total.max(1e-9)
            );
        }
        s += &format!("{:<40} {:>8} {:>12.3}\n", "total GPU time", "", total / 1e6);
        s
    }
}
