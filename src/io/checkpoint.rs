//! Checkpoints in the safetensors format: an 8-byte little-endian header length, a JSON header
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
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
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

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if !self.metadata.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> =
                self.metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
            header.insert("__metadata__".into(), m.into());
        }
        let mut offset = 0usize;
        for (name, (shape, data)) in &self.tensors {
            let end = offset + data.len() * 4;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        let mut h = serde_json::Value::Object(header).to_string().into_bytes();
        while (8 + h.len()) % 8 != 0 {
            h.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + h.len() + offset);
        out.extend_from_slice(&(h.len() as u64).to_le_bytes());
        out.extend_from_slice(&h);
        for (_, data) in self.tensors.values() {
            for v in data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Write atomically: a temporary file beside `path`, flushed, then renamed over it.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::write_atomic(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, "cannot read checkpoint", e))?;
        Self::from_bytes(&bytes).map_err(|e| {
            Error::Io(format!("{}: not a valid safetensors checkpoint: {e}", path.display()), Default::default())
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        if bytes.len() < 8 {
            return Err(format!("{} bytes is too short for a header (truncated?)", bytes.len()));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        if n > bytes.len() - 8 {
            return Err(format!("header claims {n} bytes, the file has {} (truncated?)", bytes.len() - 8));
        }
        let header: serde_json::Value =
            serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| format!("header is not JSON: {e}"))?;
        let obj = header.as_object().ok_or("header is not a JSON object")?;
        let data = &bytes[8 + n..];
        let mut ck = Checkpoint::default();
        for (name, v) in obj {
            if name == "__metadata__" {
                for (k, val) in v.as_object().ok_or("__metadata__ is not an object")? {
                    ck.metadata
                        .insert(k.clone(), val.as_str().ok_or(format!("metadata '{k}' is not a string"))?.to_string());
                }
                continue;
            }
            let dtype = v["dtype"].as_str().ok_or(format!("tensor '{name}' has no dtype"))?;
            if dtype != "F32" {
                return Err(format!("tensor '{name}' is {dtype}; scoregen reads F32 checkpoints"));
            }
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .ok_or(format!("tensor '{name}' has no shape"))?
                .iter()
                .map(|d| d.as_u64().map(|x| x as usize))
                .collect::<Option<_>>()
                .ok_or(format!("tensor '{name}' has a bad shape"))?;
            let offs = v["data_offsets"]
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or(format!("tensor '{name}' has no data_offsets"))?;
            let (s, e) = (offs[0].as_u64().unwrap_or(u64::MAX) as usize, offs[1].as_u64().unwrap_or(0) as usize);
            let want = shape.iter().product::<usize>() * 4;
            if e < s || e - s != want {
                return Err(format!("tensor '{name}': offsets {s}..{e} do not hold shape {shape:?}"));
            }
            if e > data.len() {
                return Err(format!(
                    "tensor '{name}' ends at byte {e} of a {}-byte data section (truncated?)",
                    data.len()
                ));
            }
            let vals = data[s..e].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            ck.tensors.insert(name.clone(), (shape, vals));
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
