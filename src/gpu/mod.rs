//! GPU runtime: adapter and device, buffer pool, pipeline cache, recording and submission,
//! readback and timestamp profiling.

pub mod context;
pub mod info;
pub mod pipeline;
pub mod pool;
pub mod profile;
pub mod record;
pub mod tune;

pub use context::{enumerate_adapters, BackendChoice, Gpu, GpuOptions};
pub use pool::{PooledBuffer, Usage};
pub use record::{encode_steps, fold_groups, Captured, Recorder, Step};
