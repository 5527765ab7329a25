//! On-disk cache of per-adapter autotune results: one line per (kernel, adapter) in
//! `$SCOREGEN_CACHE_DIR` or `$XDG_CACHE_HOME/scoregen` or `~/.cache/scoregen`, file `tune.txt`.
//! A missing or unwritable cache only means the autotune runs again.

use super::context::Gpu;
use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Per-device results of tuning, by kernel name: whatever value a kernel family tuned (ops
/// fills it; gpu knows no kernel's types). Each value is computed once per device.
#[derive(Default)]
pub struct TuneCache {
    entries: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

impl TuneCache {
    /// The value for `kernel`, computed by `init` on first use. `init` runs without the lock
    /// held (it may itself run kernels that consult the cache); a racing second computation is
    /// discarded.
    pub fn get_or_init<T: Clone + Send + Sync + 'static>(&self, kernel: &'static str, init: impl FnOnce() -> T) -> T {
        let get = |m: &HashMap<&'static str, Arc<dyn Any + Send + Sync>>| {
            m.get(kernel).and_then(|v| v.downcast_ref::<T>().cloned())
        };
        if let Some(v) = get(&self.entries.lock().unwrap()) {
            return v;
        }
        let v = init();
        let mut m = self.entries.lock().unwrap();
        if let Some(old) = get(&m) {
            return old;
        }
        m.insert(kernel, Arc::new(v.clone()));
        v
    }
}

/// The autotune cache file (under the user's cache folder), if there is one.
pub fn cache_file() -> Option<PathBuf> {
    let dir = if let Ok(d) = std::env::var("SCOREGEN_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Ok(d) = std::env::var("XDG_CACHE_HOME") {
        PathBuf::from(d).join("scoregen")
    } else {
        PathBuf::from(std::env::var("HOME").ok()?).join(".cache").join("scoregen")
    };
    Some(dir.join("tune.txt"))
}

/// Identifies an adapter and driver version: a driver update re-tunes.
pub fn adapter_key(gpu: &Gpu) -> String {
    let i = &gpu.info;
    format!("{}|{:?}|{}|{}|v2", i.name, i.backend, i.driver, i.driver_info).replace(['\t', '\n'], " ")
}

/// A cached autotune choice of `kernel` for `key` (adapter and shape).
pub fn load(kernel: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(cache_file()?).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, '\t');
        (it.next()? == kernel && it.next()? == key).then(|| it.next().map(str::to_string)).flatten()
    })
}

/// Remember an autotune choice (best effort: a read-only cache is not an error).
pub fn store(kernel: &str, key: &str, value: &str) {
    let Some(path) = cache_file() else { return };
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> =
        old.lines().filter(|l| !l.starts_with(&format!("{kernel}\t{key}\t"))).map(str::to_string).collect();
    lines.push(format!("{kernel}\t{key}\t{value}"));
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Atomic: write a temporary file, then rename over the old one.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, lines.join("\n") + "\n").is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}
