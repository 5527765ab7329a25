//! Readers for data on disk: MNIST-style idx files (optionally gzipped), .npy float32 arrays
//! and folders of PNG/JPEG images. Images come out as [C, H, W] floats scaled to [-1, 1].

use crate::error::{Error, Result};
pub use crate::io::npy::{read_npy, write_npy};
use std::io::Read;
use std::path::Path;

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| {
        let m = format!("{}: cannot read the data file: {e} (check data.path in the config)", path.display());
        Error::Io(m, crate::error::Cause(Some(std::sync::Arc::new(e))))
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::io(format!("{}: corrupt gzip data", path.display()), e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// An idx array (MNIST, Fashion-MNIST): (dims, unsigned bytes).
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let b = read_maybe_gz(path)?;
    let bad = |what: &str| Error::Invalid(format!("{}: not an idx file of unsigned bytes ({what})", path.display()));
    if b.len() < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0x08 {
        return Err(bad("bad magic number"));
    }
    let nd = b[3] as usize;
    if nd == 0 || b.len() < 4 + 4 * nd {
        return Err(bad("truncated header"));
    }
    let dims: Vec<usize> =
        (0..nd).map(|i| u32::from_be_bytes(b[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let data = &b[4 + 4 * nd..];
    let n = crate::tensor::checked_numel(&dims).unwrap_or(usize::MAX);
    if data.len() < n {
        return Err(bad(&format!("{} bytes of data for dims {dims:?}", data.len())));
    }
    Ok((dims, data[..n].to_vec()))
}

/// idx images [N, H, W] -> (N, [1, H, W], floats in [-1, 1]).
pub fn idx_images(path: &Path, limit: Option<usize>) -> Result<(usize, Vec<usize>, Vec<f32>)> {
    let (dims, bytes) = read_idx(path)?;
    if dims.len() != 3 {
        return Err(Error::Invalid(format!("{}: idx images must be [N, H, W], got {dims:?}", path.display())));
    }
    if dims[0] == 0 || dims[1] == 0 || dims[2] == 0 {
        return Err(Error::Invalid(format!("{}: holds no images (its shape is {dims:?})", path.display())));
    }
    let n = limit.unwrap_or(dims[0]).min(dims[0]);
    let per = dims[1] * dims[2];
    let data = bytes[..n * per].iter().map(|&v| v as f32 / 127.5 - 1.0).collect();
    Ok((n, vec![1, dims[1], dims[2]], data))
}

fn is_image(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    ["png", "jpg", "jpeg"].contains(&ext.as_str())
}

/// The entries of a folder, sorted by name.
fn entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("{}: cannot read the image folder", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// A folder's images in order, and, when the folder holds no images itself but subfolders of
/// them, one class per subfolder (names sorted; the images class by class).
pub type FolderClasses = Option<(Vec<String>, Vec<u32>)>;

fn image_files(dir: &Path) -> Result<(Vec<std::path::PathBuf>, FolderClasses)> {
    let all = entries(dir)?;
    let files: Vec<_> = all.iter().filter(|p| p.is_file() && is_image(p)).cloned().collect();
    if !files.is_empty() {
        return Ok((files, None));
    }
    let (mut files, mut names, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for sub in all.iter().filter(|p| p.is_dir()) {
        let imgs: Vec<_> = entries(sub)?.into_iter().filter(|p| p.is_file() && is_image(p)).collect();
        if imgs.is_empty() {
            continue;
        }
        labels.extend(std::iter::repeat_n(names.len() as u32, imgs.len()));
        names.push(sub.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        files.extend(imgs);
    }
    Ok((files, (!names.is_empty()).then_some((names, labels))))
}

/// Every PNG/JPEG of a folder (sorted by name), or of its subfolders, one class each, when the
/// folder holds none itself; resized to size x size, [C, H, W] in [-1, 1].
pub fn image_folder(
    dir: &Path,
    size: usize,
    channels: usize,
    limit: Option<usize>,
) -> Result<(usize, Vec<f32>, FolderClasses)> {
    let (mut files, mut classes) = image_files(dir)?;
    if let Some(l) = limit {
        files.truncate(l);
        if let Some((_, labels)) = classes.as_mut() {
            labels.truncate(l);
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no .png or .jpg images in the folder or in its subfolders",
            dir.display()
        )));
    }
    let mut data = Vec::new();
    let numbers = crate::tensor::checked_numel(&[files.len(), channels, size, size]).unwrap_or(usize::MAX);
    data.try_reserve_exact(numbers).map_err(|_| {
        Error::Limit(format!(
            "{}: {} images of {channels}x{size}x{size} need {:.1} GB of memory; lower data.size or set data.limit",
            dir.display(),
            files.len(),
            numbers as f64 * 4e-9
        ))
    })?;
    for f in &files {
        let img = image::open(f)
            .map_err(|e| Error::Invalid(format!("{}: unreadable image: {e}", f.display())))?
            .resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle);
        let px: Vec<u8> = if channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
        for c in 0..channels {
            data.extend((0..size * size).map(|i| px[i * channels + c] as f32 / 127.5 - 1.0));
        }
    }
    Ok((files.len(), data, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_errors_name_the_problem() {
        let dir = std::env::temp_dir().join(format!("scoregen-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        write_npy(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(read_npy(&p).unwrap(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        // A file with NumPy's header (padded to 128 bytes) and no data.
        let npy_header = |header: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            let pad = 128 - 10 - header.len() - 1;
            b.extend(((header.len() + pad + 1) as u16).to_le_bytes());
            b.extend(header.bytes().chain(std::iter::repeat_n(b' ', pad)).chain([b'\n']));
            b
        };
        // int64, float64 and big-endian float32 arrays are converted; complex ones are refused
        // naming the dtype. Then a truncated file, a shape whose element count wraps to 0 in 64
        // bits (2^32 x 2^32), garbage.
        for (descr, bytes) in [
            ("<i8", [3i64, -2].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
            ("<f8", [3.0f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect()),
            (">f4", [3.0f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect()),
        ] {
            let mut b = npy_header(&format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}"));
            b.extend(bytes);
            std::fs::write(&p, &b).unwrap();
            assert_eq!(read_npy(&p).unwrap(), (vec![2], vec![3.0, -2.0]), "{descr}");
        }
        let mut b = npy_header("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }");
        b.extend([0u8; 16]);
        std::fs::write(&p, &b).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("a.npy") && e.contains("dtype '<c8'") && e.contains("astype(np.float32)"), "{e}");
        write_npy(&p, &[2, 3], &[0.0; 6]).unwrap();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 8]).unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("data bytes for shape [2, 3]"));
        let b = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }");
        std::fs::write(&p, &b).unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("data bytes for shape"));
        std::fs::write(&p, b"not an array").unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("a.npy: not a numeric .npy array"), "{e}");
        // idx: four dims of 2^16 (their product wraps to 0) over no data.
        let q = dir.join("a.idx");
        std::fs::write(&q, [vec![0, 0, 8, 4], [0, 1, 0, 0].repeat(4)].concat()).unwrap();
        assert!(read_idx(&q)
            .unwrap_err()
            .to_string()
            .contains("0 bytes of data for dims [65536, 65536, 65536, 65536]"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
