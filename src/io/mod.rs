//! Files: checkpoints (safetensors).

pub mod checkpoint;
