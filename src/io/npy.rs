//! NumPy's .npy format through the `npyz` crate: data sets and labels in (any numeric dtype,
//! either byte order), samples out (float32, C order).

use crate::error::{Error, Result};
use npyz::{TypeChar, WriterBuilder};
use std::path::Path;

/// A numeric .npy array's header and the reader left at its data, the data checked to be all
/// there (a truncated file is named before anything is read).
struct Opened {
    header: npyz::NpyHeader,
    kind: TypeChar,
    size: usize,
    descr: String,
    shape: Vec<usize>,
    data: std::io::BufReader<std::fs::File>,
}

fn open(path: &Path, what: &str) -> Result<Opened> {
    use std::io::Seek;
    let p = path.display();
    let f = std::fs::File::open(path).map_err(|e| Error::io(format!("{p}: cannot read"), e))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut data = std::io::BufReader::with_capacity(1 << 20, f);
    let bad = |why: String| Error::Invalid(format!("{p}: not {what} ({why})"));
    let header = npyz::NpyHeader::from_reader(&mut data).map_err(|e| bad(e.to_string()))?;
    let (kind, size, descr) = match header.dtype() {
        npyz::DType::Plain(t) => (t.type_char(), t.num_bytes().unwrap_or(0), t.to_string()),
        d => return Err(bad(format!("a structured dtype {}", d.descr()))),
    };
    if !supported(kind, size) {
        return Err(Error::Invalid(format!(
            "{p}: dtype '{descr}' is not an integer or float; save with .astype(np.float32)"
        )));
    }
    if header.order() == npyz::Order::Fortran && header.shape().len() > 1 {
        return Err(bad("Fortran order; save a C-contiguous array".into()));
    }
    let shape: Vec<usize> = header.shape().iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
    let at = data.stream_position().map_err(|e| Error::io(format!("{p}: cannot read"), e))?;
    let n = crate::tensor::checked_numel(&shape).unwrap_or(usize::MAX);
    let have = len.saturating_sub(at) / size.max(1) as u64;
    if have < n as u64 {
        return Err(bad(format!("{} data bytes for shape {shape:?}", len.saturating_sub(at))));
    }
    Ok(Opened { header, kind, size, descr, shape, data })
}

/// The dtypes read: floats of 4 and 8 bytes, integers of 1 to 8.
fn supported(kind: TypeChar, size: usize) -> bool {
    use TypeChar::*;
    matches!((kind, size), (Float, 4 | 8) | (Int | Uint, 1 | 2 | 4 | 8))
}

impl Opened {
    /// Every value as `T`, read as the file's dtype `D` and converted.
    fn values<D: npyz::Deserialize, T>(self, path: &Path, f: impl Fn(D) -> T) -> Result<Vec<T>> {
        let p = path.display();
        let r = npyz::NpyFile::with_header(self.header, self.data);
        let d = r.data::<D>().map_err(|e| Error::Invalid(format!("{p}: {e}")))?;
        d.map(|v| v.map(&f)).collect::<std::io::Result<Vec<T>>>().map_err(|e| Error::io(format!("{p}: cannot read"), e))
    }

    /// Every value as f64 (exact for every dtype but 64-bit integers beyond 2^53).
    fn numbers(self, path: &Path) -> Result<Vec<f64>> {
        use TypeChar::*;
        match (self.kind, self.size) {
            (Float, 4) => self.values(path, |v: f32| v as f64),
            (Float, 8) => self.values(path, |v: f64| v),
            (Uint, 1) => self.values(path, |v: u8| v as f64),
            (Int, 1) => self.values(path, |v: i8| v as f64),
            (Uint, 2) => self.values(path, |v: u16| v as f64),
            (Int, 2) => self.values(path, |v: i16| v as f64),
            (Uint, 4) => self.values(path, |v: u32| v as f64),
            (Int, 4) => self.values(path, |v: i32| v as f64),
            (Uint, 8) => self.values(path, |v: u64| v as f64),
            (Int, 8) => self.values(path, |v: i64| v as f64),
            _ => unreachable!("open() refuses other dtypes"),
        }
    }
}

/// A numeric .npy array as float32: (shape, data). float32 is read as is; any other numeric
/// dtype (float64 from NumPy's defaults, integers) is converted, with a note on stderr.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let o = open(path, "a numeric .npy array")?;
    let shape = o.shape.clone();
    if (o.kind, o.size) == (TypeChar::Float, 4) {
        return Ok((shape, o.values(path, |v: f32| v)?));
    }
    let descr = o.descr.clone();
    let v = o.numbers(path)?;
    crate::progress::note(&format!("{}: dtype '{descr}' converted to float32", path.display()));
    Ok((shape, v.into_iter().map(|v| v as f32).collect()))
}

/// A .npy array of any integer or float dtype, as f64: label arrays come as int64 from NumPy
/// and uint8 from others.
pub fn read_npy_numbers(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let o = open(path, "a numeric .npy array")?;
    let shape = o.shape.clone();
    Ok((shape, o.numbers(path)?))
}

/// A float32 C-order writer of `shape` over `w`.
fn writer<W: std::io::Write>(w: W, shape: &[usize]) -> std::io::Result<npyz::NpyWriter<f32, W>> {
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    npyz::WriteOptions::new().default_dtype().shape(&dims).writer(w).begin_nd()
}

/// Write a float32 .npy array (C order), atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let mut out = Vec::with_capacity(128 + 4 * data.len());
    let fail = |e: std::io::Error| Error::io(format!("{}: cannot write", path.display()), e);
    let mut w = writer(&mut out, shape).map_err(fail)?;
    w.extend(data.iter().copied()).map_err(fail)?;
    w.finish().map_err(fail)?;
    crate::io::write_atomic(path, &out)
}

/// A float32 .npy array written in pieces (samples as they are drawn, never all in memory):
/// into a temporary file beside the target (`.NAME.tmpPID`, swept if the process dies), renamed
/// over it by `finish` once every value is there.
pub struct NpyWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    w: Option<npyz::NpyWriter<f32, std::io::BufWriter<std::fs::File>>>,
    left: u128,
}

impl Drop for NpyWriter {
    /// Dropped unfinished (an error while sampling): the partial temporary file goes.
    fn drop(&mut self) {
        if let Some(w) = self.w.take() {
            drop(w);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl NpyWriter {
    /// Refused up front where the file system holding `path` has less room than the array.
    pub fn create(path: &Path, shape: &[usize]) -> Result<NpyWriter> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let numel = shape.iter().map(|&d| d as u128).product::<u128>();
        let need = 128 + 4 * numel;
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
        let fail = |e| Error::io(format!("{}: cannot write", tmp.display()), e);
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(format!("{}: cannot create", tmp.display()), e))?;
        let w = writer(std::io::BufWriter::with_capacity(1 << 20, f), shape).map_err(fail)?;
        Ok(NpyWriter { path: path.to_path_buf(), tmp, w: Some(w), left: numel })
    }

    /// Append values (C order).
    pub fn write(&mut self, values: &[f32]) -> Result<()> {
        if values.len() as u128 > self.left {
            return Err(Error::Shape(format!("{}: more values than the array's shape holds", self.path.display())));
        }
        self.left -= values.len() as u128;
        let r = self.w.as_mut().map_or(Ok(()), |w| w.extend(values.iter().copied()));
        r.map_err(|e| self.fail(e))
    }

    /// Flush and rename into place; an array with values missing is an error (and removed).
    pub fn finish(mut self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::Shape(format!("{}: {} values missing", self.path.display(), self.left)));
        }
        let w = self.w.take().expect("an unfinished writer");
        let done = w
            .finish()
            .and_then(|_| std::fs::File::open(&self.tmp)?.sync_all())
            .and_then(|_| std::fs::rename(&self.tmp, &self.path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(self.fail(e));
        }
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
