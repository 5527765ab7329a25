//! Class labels of a data set: MNIST-style idx label files, integer `.npy` arrays, the
//! subfolders of an image folder (one per class, names kept), and the components of the 2-D
//! mixture toys. Conditional models and classifiers train on them (`model.classes`).

use crate::error::{Error, Result};
use std::path::Path;

/// The labels of a stored data set (one per sample) and the classes' names.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// Class of each sample, 0 .. classes.
    pub of: Vec<u32>,
    /// The classes' names: folder names, or "0", "1", ... for numbered labels.
    pub names: Vec<String>,
}

impl Labels {
    /// Numbered labels (names "0" .. "max"), checked: integral and non-negative.
    pub fn numbered(values: &[f64], file: &Path) -> Result<Labels> {
        if let Some((i, v)) =
            values.iter().enumerate().find(|(_, v)| !(v.fract() == 0.0 && **v >= 0.0 && **v < 65536.0))
        {
            return Err(Error::Invalid(format!(
                "{}: label {i} is {v}; labels must be class numbers 0, 1, 2, ... (below 65,536)",
                file.display()
            )));
        }
        let of: Vec<u32> = values.iter().map(|&v| v as u32).collect();
        let classes = of.iter().max().map(|m| m + 1).unwrap_or(0);
        Ok(Labels { of, names: (0..classes).map(|c| c.to_string()).collect() })
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.names.len()
    }

    /// How many samples of each class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes()];
        for &l in &self.of {
            c[l as usize] += 1;
        }
        c
    }
}

/// A label file for `n` samples: an idx file of one dimension (MNIST's
/// `train-labels-idx1-ubyte`, gzipped or not) or a `.npy` array [N] or [N, 1] of any integer
/// (or integral float) dtype. A count that does not match the data's (`limited`: the data were
/// cut to their first n by `data.limit`) is an error naming both files.
pub fn read_labels(path: &Path, n: usize, limited: bool, data_file: &str) -> Result<Labels> {
    let is_npy = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut m = [0u8; 6];
            std::io::Read::read_exact(&mut f, &mut m).map(|_| &m == b"\x93NUMPY")
        })
        .unwrap_or(false);
    let (shape, values): (Vec<usize>, Vec<f64>) = if is_npy {
        crate::io::npy::read_npy_numbers(path)?
    } else {
        let (dims, bytes) = super::files::read_idx(path).map_err(|e| {
            Error::Invalid(format!("{e}; data.labels takes an idx label file or an integer .npy array"))
        })?;
        (dims, bytes.iter().map(|&b| b as f64).collect())
    };
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
        return Err(Error::Invalid(format!(
            "{}: labels must be one number per sample ([N] or [N, 1]), the array is {shape:?}",
            path.display()
        )));
    }
    check_count(shape[0], n, limited, path, data_file)?;
    Labels::numbered(&values[..n], path)
}

/// The counts must match exactly, or be more when the data were cut by `data.limit`.
fn check_count(labels: usize, n: usize, limited: bool, path: &Path, data_file: &str) -> Result<()> {
    if labels != n && !(limited && labels > n) {
        return Err(Error::Invalid(format!(
            "{}: {labels} labels for the {n} samples of {data_file}; give the label file of these data",
            path.display()
        )));
    }
    Ok(())
}

/// One-hot rows [n, classes + 1] of `labels` (`None`: the null label, the last column).
pub fn one_hot(labels: &[Option<u32>], classes: usize) -> Vec<f32> {
    let k = classes + 1;
    let mut v = vec![0f32; labels.len() * k];
    for (i, l) in labels.iter().enumerate() {
        v[i * k + l.map(|c| c as usize).unwrap_or(classes)] = 1.0;
    }
    v
}
