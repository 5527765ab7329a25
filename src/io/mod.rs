//! Files: checkpoints (safetensors), plots and image grids (PNG), atomic writes.

pub mod checkpoint;
pub mod plot;

use crate::error::{Error, Result};
use std::path::Path;

/// Write a file atomically: a temporary file beside `path`, flushed, then renamed over it, so
/// an interrupted write never leaves a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |p: &Path, what: &str, e: std::io::Error| Error::Io(format!("{}: {what}: {e}", p.display()));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(path, "cannot create its folder", e))?;
    let tmp =
        dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("out"), std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| err(&tmp, "cannot create", e))?;
        f.write_all(bytes).map_err(|e| err(&tmp, "cannot write", e))?;
        f.sync_all().map_err(|e| err(&tmp, "cannot flush", e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(path, "cannot replace", e))
}
