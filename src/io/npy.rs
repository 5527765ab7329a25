//! NumPy's .npy format for float32 arrays in C order: data sets in, samples out.

use crate::error::{Error, Result};
use std::path::Path;

/// A little-endian float32 .npy array: (shape, data).
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let (_, shape, data) = read_raw(path, "a float32 .npy array", &|descr| {
        if descr == "<f4" {
            return Ok(());
        }
        let p = path.display();
        Err(Error::Invalid(format!("{p}: not a float32 .npy array (dtype '{descr}'; save with .astype(np.float32))")))
    })?;
    Ok((shape, data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
}

/// A .npy array of any little-endian (or one-byte) integer or float dtype, as f64: label arrays
/// come as int64 from NumPy and uint8 from others.
pub fn read_npy_numbers(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let (descr, shape, data) = read_raw(path, "a numeric .npy array", &|_| Ok(()))?;
    let v: Vec<f64> = match descr.as_str() {
        "<f4" => data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<f8" => data.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        "|u1" | "<u1" => data.iter().map(|&b| b as f64).collect(),
        "|i1" | "<i1" => data.iter().map(|&b| b as i8 as f64).collect(),
        "<u2" => data.chunks(2).map(|c| u16::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<i2" => data.chunks(2).map(|c| i16::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<u4" => data.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<i4" => data.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<u8" => data.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<i8" => data.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        d => {
            return Err(Error::Invalid(format!(
                "{}: dtype '{d}' is not a little-endian integer or float; save with .astype(np.int64)",
                path.display()
            )))
        }
    };
    Ok((shape, v))
}

/// The size in bytes of one element of a dtype NumPy writes (0: unknown).
fn item_size(descr: &str) -> usize {
    descr.get(2..).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The header's dtype and shape and the data bytes (exactly the shape's worth) of a C-order
/// .npy; `dtype_ok` judges the dtype before the data are counted.
fn read_raw(path: &Path, what: &str, dtype_ok: &dyn Fn(&str) -> Result<()>) -> Result<(String, Vec<usize>, Vec<u8>)> {
    let b = std::fs::read(path).map_err(|e| Error::io(format!("{}: cannot read", path.display()), e))?;
    let bad = |why: String| Error::Invalid(format!("{}: not {what} ({why})", path.display()));
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
    let descr = header.split("'descr':").nth(1).and_then(|r| r.split('\'').nth(1)).unwrap_or("?").to_string();
    dtype_ok(&descr)?;
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
    let size = item_size(&descr).max(1);
    let data = &b[start + hlen..];
    if data.len() / size < n {
        return Err(bad(format!("{} data bytes for shape {shape:?}", data.len())));
    }
    Ok((descr, shape, data[..size * n].to_vec()))
}

/// NumPy's header for a float32 C-order array of `shape` (padded to 64 bytes).
fn header(shape: &[usize]) -> Vec<u8> {
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
    out
}

/// Write a float32 .npy array (C order), atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let mut out = header(shape);
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    crate::io::write_atomic(path, &out)
}

/// A float32 .npy array written in pieces (samples as they are drawn, never all in memory):
/// into a temporary file beside the target (`.NAME.tmpPID`, swept if the process dies), renamed
/// over it by `finish` once every value is there.
pub struct NpyWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    left: u128,
    done: bool,
}

impl Drop for NpyWriter {
    /// Dropped unfinished (an error while sampling): the partial temporary file goes.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl NpyWriter {
    /// Refused up front where the file system holding `path` has less room than the array.
    pub fn create(path: &Path, shape: &[usize]) -> Result<NpyWriter> {
        use std::io::Write;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let need = header(shape).len() as u128 + 4 * shape.iter().map(|&d| d as u128).product::<u128>();
        if let Some(free) = crate::io::free_bytes(dir) {
            if need > free as u128 {
                return Err(Error::Limit(format!(
                    "{}: an array of {shape:?} needs {:.1} GB, {} has {:.1} GB free; draw fewer samples (--n) or \
                     write elsewhere",
                    path.display(),
                    need as f64 / 1e9,
                    dir.display(),
                    free as f64 / 1e9
                )));
            }
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(format!("{}: cannot create", tmp.display()), e))?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, f);
        file.write_all(&header(shape)).map_err(|e| Error::io(format!("{}: cannot write", tmp.display()), e))?;
        let left = shape.iter().map(|&d| d as u128).product();
        Ok(NpyWriter { path: path.to_path_buf(), tmp, file, left, done: false })
    }

    /// Append values (C order).
    pub fn write(&mut self, values: &[f32]) -> Result<()> {
        use std::io::Write;
        if values.len() as u128 > self.left {
            return Err(Error::Shape(format!("{}: more values than the array's shape holds", self.path.display())));
        }
        self.left -= values.len() as u128;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.file.write_all(&bytes).map_err(|e| self.fail(e))
    }

    /// Flush and rename into place; an array with values missing is an error (and removed).
    pub fn finish(mut self) -> Result<()> {
        use std::io::Write;
        if self.left != 0 {
            return Err(Error::Shape(format!("{}: {} values missing", self.path.display(), self.left)));
        }
        self.file.flush().map_err(|e| self.fail(e))?;
        self.file.get_ref().sync_all().map_err(|e| self.fail(e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| self.fail(e))?;
        self.done = true;
        Ok(())
    }

    /// A write error (the partial temporary file goes when the writer is dropped: a full disk
    /// must not stay full).
    fn fail(&self, e: std::io::Error) -> Error {
        Error::io(format!("{}: cannot write", self.path.display()), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_arrays_read_back_and_incomplete_ones_leave_nothing() {
        let dir = std::env::temp_dir().join(format!("scoregen-npyw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.npy");
        let mut w = NpyWriter::create(&p, &[5, 2]).unwrap();
        for chunk in (0..10).map(|v| v as f32).collect::<Vec<_>>().chunks(3) {
            w.write(chunk).unwrap();
        }
        w.finish().unwrap();
        let (shape, data) = read_npy(&p).unwrap();
        assert_eq!((shape, data), (vec![5, 2], (0..10).map(|v| v as f32).collect::<Vec<_>>()));
        // Stopped short: an error, no file, no temporary.
        let q = dir.join("t.npy");
        let mut w = NpyWriter::create(&q, &[4]).unwrap();
        w.write(&[1.0]).unwrap();
        assert!(w.finish().unwrap_err().to_string().contains("3 values missing"));
        assert!(!q.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a temporary was left behind");
        // Beyond the free space: refused before anything is written.
        let e = NpyWriter::create(&dir.join("big.npy"), &[1 << 50, 2]).err().expect("refused").to_string();
        assert!(e.contains("GB free") && e.contains("big.npy"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
