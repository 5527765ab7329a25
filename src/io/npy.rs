//! NumPy's .npy format for float32 arrays in C order: data sets in, samples out.

use crate::error::{Error, Result};
use std::path::Path;

/// A little-endian float32 .npy array: (shape, data).
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let b = std::fs::read(path).map_err(|e| Error::io(format!("{}: cannot read", path.display()), e))?;
    let bad = |what: String| Error::Invalid(format!("{}: not a float32 .npy array ({what})", path.display()));
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("bad magic".into()));
    }
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        if b.len() < 12 {
            return Err(bad("truncated header".into()));
        }
        (u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize, 12)
    };
    let header = std::str::from_utf8(b.get(start..start + hlen).ok_or_else(|| bad("truncated header".into()))?)
        .map_err(|_| bad("header is not text".into()))?;
    if !header.contains("'descr': '<f4'") {
        let descr = header.split("'descr':").nth(1).and_then(|r| r.split('\'').nth(1)).unwrap_or("?");
        return Err(bad(format!("dtype '{descr}'; save with .astype(np.float32)")));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order; save a C-contiguous array".into()));
    }
    let sh = header
        .split("'shape':")
        .nth(1)
        .and_then(|r| r.split('(').nth(1))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("no shape".into()))?;
    let shape: Vec<usize> = sh
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(format!("shape ({sh})"))))
        .collect::<Result<_>>()?;
    let n = crate::tensor::checked_numel(&shape).unwrap_or(usize::MAX);
    let data = &b[start + hlen..];
    if data.len() / 4 < n {
        return Err(bad(format!("{} data bytes for shape {shape:?}", data.len())));
    }
    Ok((shape, data[..4 * n].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
}

/// Write a float32 .npy array (C order), atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    crate::io::write_atomic(path, &out)
}
