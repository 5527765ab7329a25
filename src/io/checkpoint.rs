//! Checkpoints in the safetensors format, read and written by the `safetensors` crate with our
//! validation and messages on top: an 8-byte little-endian header length, a JSON header
//! ({name: {dtype, shape, data_offsets}}, plus "__metadata__" with string values: the model
//! config travels there), then the raw little-endian data. Names and layouts are PyTorch's, so
//! `safetensors.torch.load_file` gives a `state_dict`. Writes are atomic (temporary file in the
//! same folder, then rename): an interrupted save never leaves a torn checkpoint.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::plan::ParamStore;
use std::collections::BTreeMap;
use std::path::Path;

/// Tensors by name (shape, f32 data) and the metadata strings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Tensors by name: (shape, values in C order).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// The `__metadata__` strings (the run's config, the step, data moments, ...).
    pub metadata: BTreeMap<String, String>,
}

fn io_err(path: &Path, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::io(format!("{}: {what}", path.display()), e)
}

impl Checkpoint {
    /// Read the parameters (and any extra tensors) back from the GPU.
    pub fn from_params(gpu: &Gpu, params: &ParamStore, metadata: BTreeMap<String, String>) -> Result<Checkpoint> {
        let mut tensors = BTreeMap::new();
        for (name, t) in params {
            tensors.insert(name.clone(), (t.shape().to_vec(), t.to_vec(gpu)?));
        }
        Ok(Checkpoint { tensors, metadata })
    }

    /// The safetensors bytes (written by the `safetensors` crate: F32 tensors in name order, the
    /// metadata as `__metadata__`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> =
            self.tensors.iter().map(|(k, (s, v))| (k, s, bytemuck::cast_slice(v).to_vec())).collect();
        let views = bytes.iter().map(|(k, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.to_vec(), b)
                .expect("a checkpoint's tensors hold their shapes");
            (k.as_str(), view)
        });
        let meta = (!self.metadata.is_empty()).then(|| self.metadata.clone().into_iter().collect());
        safetensors::serialize(views, meta).expect("F32 tensors of consistent shapes serialise")
    }

    /// Write atomically: a temporary file beside `path`, flushed, then renamed over it.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::write_atomic(path, &self.to_bytes())
    }

    /// Read a safetensors file (F32; F64 and BF16 converted), checking it whole.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, "cannot read the safetensors file", e))?;
        Self::from_bytes(&bytes).map_err(|e| {
            Error::Io(format!("{}: not a valid safetensors file: {e}", path.display()), Default::default())
        })
    }

    /// Parse safetensors bytes (the `safetensors` crate), with our messages: truncation, a header
    /// that is not JSON, offsets that do not hold a shape, dtypes other than F32 (F64 and BF16
    /// are converted to f32, as PyTorch's `.float()` would).
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        use safetensors::SafeTensorError as E;
        if bytes.len() < 8 {
            return Err(format!("{} bytes is too short for a header (truncated?)", bytes.len()));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        if n > (bytes.len() - 8) as u64 {
            return Err(format!("header claims {n} bytes, the file has {} (truncated?)", bytes.len() - 8));
        }
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| match e {
            E::InvalidHeader(_) | E::InvalidHeaderDeserialization(_) | E::JsonError(_) => {
                format!("header is not JSON: {e}")
            }
            E::MetadataIncompleteBuffer => "the data section does not match the header (truncated?)".into(),
            E::InvalidOffset(name) => format!("tensor '{name}': its data_offsets do not hold its shape"),
            e => e.to_string(),
        })?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let mut ck = Checkpoint::default();
        if let Some(m) = meta.metadata() {
            ck.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        for (name, view) in st.tensors() {
            let b = view.data();
            let vals: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
                }
                safetensors::Dtype::F64 => {
                    b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
                }
                safetensors::Dtype::BF16 => {
                    b.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect()
                }
                d => return Err(format!("tensor '{name}' is {d:?}; scoregen reads F32 (and converts F64, BF16)")),
            };
            ck.tensors.insert(name, (view.shape().to_vec(), vals));
        }
        Ok(ck)
    }

    /// Copy into existing parameters, checking names, shapes and dtypes; every mismatch is
    /// listed in one error.
    pub fn load_into(&self, gpu: &Gpu, params: &ParamStore, source: &str) -> Result<()> {
        let mut problems = Vec::new();
        for (name, t) in params {
            match self.tensors.get(name) {
                None => problems.push(format!("missing '{name}' {:?}", t.shape())),
                Some((shape, _)) if shape != t.shape() => {
                    problems.push(format!("'{name}' is {shape:?} in the file, the model wants {:?}", t.shape()))
                }
                _ => {}
            }
        }
        for name in self.tensors.keys() {
            if !params.contains_key(name) {
                problems.push(format!("unexpected '{name}'"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(format!("{source} does not match this model: {}", problems.join("; "))));
        }
        for (name, t) in params {
            let (_, data) = &self.tensors[name];
            gpu.queue.write_buffer(t.buffer().buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }
}
