//! Files: checkpoints (safetensors), plots and image grids (PNG), atomic writes.

pub mod checkpoint;
pub mod npy;
pub mod plot;
pub mod samples;

use crate::error::{Error, Result};
use std::path::Path;

/// Write a file atomically: a temporary file beside `path`, flushed, then renamed over it, so
/// an interrupted write never leaves a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |p: &Path, what: &str, e: std::io::Error| Error::io(format!("{}: {what}", p.display()), e);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(path, "cannot create its folder", e))?;
    let tmp =
        dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("out"), std::process::id()));
    let written = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| err(&tmp, "cannot create", e))?;
        f.write_all(bytes).map_err(|e| err(&tmp, "cannot write", e))?;
        f.sync_all().map_err(|e| err(&tmp, "cannot flush", e))?;
        std::fs::rename(&tmp, path).map_err(|e| err(path, "cannot replace", e))
    })();
    if written.is_err() {
        // A partial temporary file (a full disk, say) must not keep holding the space.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Bytes free for this user in the file system holding `dir` (None where unknown).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `st` a properly sized, writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Remove temporary files of `write_atomic` in `dir` left by processes that no longer run
/// (killed mid-write): `.NAME.tmpPID` with no live PID. Returns how many were removed.
pub fn sweep_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.starts_with('.').then(|| name.rsplit_once(".tmp")).flatten().map(|(_, p)| p) else {
            continue;
        };
        if let Ok(pid) = pid.parse::<u32>() {
            if !process_alive(pid) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Whether a process with this id runs (Linux: /proc; elsewhere assumed alive, so nothing
/// of another process is ever removed).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// An exclusive lock on a run folder: `.lock` holding the owner's process id, created with
/// create-new semantics; a lock whose process no longer runs is stale and taken over. Removed
/// when dropped.
pub struct DirLock {
    path: std::path::PathBuf,
}

impl DirLock {
    /// Take the lock of run folder `dir` (refused while a live process holds it; a stale one
    /// left by a dead process is taken over).
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(".lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(DirLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if process_alive(pid) => {
                            return Err(Error::Invalid(format!(
                                "{}: another scoregen process (pid {pid}) is training into this folder; wait for it \
                                 or choose another --out",
                                dir.display()
                            )))
                        }
                        // Stale (its process is gone) or unreadable: take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(Error::io(format!("{}: cannot create the run lock", path.display()), e)),
            }
        }
        Err(Error::Io(format!("{}: cannot take the run lock", path.display()), Default::default()))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
