//! Writing samples: `.npy` arrays, image grids and 2-D density plots, with the output path
//! checked before any sampling so that a long run does not end with its samples lost.

use crate::error::{Error, Result};
use std::path::Path;

/// What `write_samples` writes for a path and sample shape.
enum OutKind {
    Npy,
    /// An image grid; false: arrays of image shape whose values are not known to lie in
    /// [-1, 1] (npy data), shown over their own range.
    Grid(bool),
    Scatter,
}

fn output_kind(path: &Path, shape: &[usize], images: bool) -> Result<OutKind> {
    let d: usize = shape.iter().product();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Ok(OutKind::Npy),
        "png" if shape.len() == 3 && (images || shape[0] == 1 || shape[0] == 3) => Ok(OutKind::Grid(images)),
        "png" if d == 2 => Ok(OutKind::Scatter),
        "png" => Err(Error::Invalid(format!(
            "{}: a PNG needs images ([1 or 3, H, W]) or 2-D points; these samples are {shape:?}: write .npy instead",
            path.display()
        ))),
        _ => Err(Error::Invalid(format!("{}: the output must end in .png or .npy", path.display()))),
    }
}

/// Whether samples of this shape can be shown as a PNG (image grid or 2-D density plot).
pub fn png_fits(shape: &[usize], images: bool) -> bool {
    output_kind(Path::new("samples.png"), shape, images).is_ok()
}

/// Check before sampling that `write_samples` can take `path` (its format, and a folder that
/// exists), so that a long run does not end in an error with its samples lost.
pub fn check_output(path: &Path, shape: &[usize], images: bool) -> Result<()> {
    output_kind(path, shape, images)?;
    if path.is_dir() {
        return Err(Error::Invalid(format!("{}: is a folder; give a file name", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        )));
    }
    // Writable: the samples are written through a temporary file in that folder.
    let probe = dir.join(format!(".scoregen-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::io(format!("{}: cannot write in {}", path.display(), dir.display()), e)),
    }
}

/// Write samples to `.png` (image grid or 2-D density plot) or `.npy` ([n, ...] float32).
pub fn write_samples(path: &Path, xs: &[f32], shape: &[usize], images: bool) -> Result<()> {
    write_samples_with(path, xs, shape, images, None, None)
}

/// `write_samples` with the image grid's columns given (default: a square grid) and, for 2-D
/// points, a titled reference set (the data, the ground truth) drawn beside the samples.
pub fn write_samples_with(
    path: &Path,
    xs: &[f32],
    shape: &[usize],
    images: bool,
    cols: Option<usize>,
    reference: Option<(&str, &[f32])>,
) -> Result<()> {
    let d: usize = shape.iter().product();
    let n = xs.len() / d;
    match output_kind(path, shape, images)? {
        OutKind::Npy => {
            let mut s = vec![n];
            s.extend(shape);
            super::npy::write_npy(path, &s, xs)
        }
        OutKind::Grid(in_range) => {
            let cols = cols.filter(|c| *c > 0).unwrap_or((n as f64).sqrt().ceil() as usize);
            if in_range {
                return crate::io::plot::image_grid(path, xs, shape, cols);
            }
            let finite = || xs.iter().copied().filter(|v| v.is_finite());
            let (lo, hi) = (finite().fold(f32::INFINITY, f32::min), finite().fold(f32::NEG_INFINITY, f32::max));
            let scale = if hi > lo { 2.0 / (hi - lo) } else { 0.0 };
            let scaled: Vec<f32> = xs.iter().map(|v| (v - lo) * scale - 1.0).collect();
            crate::io::plot::image_grid(path, &scaled, shape, cols)
        }
        OutKind::Scatter => {
            let r = reference.map_or(&[][..], |r| r.1);
            let lim = xs.iter().chain(r).fold(1f32, |a, &v| if v.is_finite() { a.max(v.abs()) } else { a }).min(50.0);
            let mut sets = vec![(format!("samples (n = {n})"), xs.to_vec())];
            sets.extend(reference.map(|(title, r)| (title.to_string(), r.to_vec())));
            crate::io::plot::scatter_row(path, &sets, lim * 1.1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_shaped_arrays_write_a_png_grid_over_their_range() {
        let dir = std::env::temp_dir().join(format!("scoregen-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Four 1x4x4 "images" of npy data far outside [-1, 1]: a 2x2 grid, not all one grey.
        let xs: Vec<f32> = (0..64).map(|i| 100.0 + i as f32).collect();
        let p = dir.join("g.png");
        write_samples(&p, &xs, &[1, 4, 4], false).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * 6 + 2, 2 * 6 + 2));
        let (a, b) = (img.get_pixel(2, 2)[0], img.get_pixel(2 + 6 + 3, 2 + 6 + 3)[0]);
        assert!(a < 10 && b > 245, "range not stretched: {a} {b}");
        // Two channels is no image: refused before any sampling, with the shape named.
        let e = check_output(&p, &[2, 4, 4], false).unwrap_err().to_string();
        assert!(e.contains("[2, 4, 4]") && e.contains(".npy"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
