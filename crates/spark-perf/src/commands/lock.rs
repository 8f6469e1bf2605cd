//! The run lock: one `spark-perf run` per Docker host, because two runs would
//! fight for the GPU and each would measure the other's load.
//!
//! An advisory `flock` on a file named after the Docker host, in the runtime
//! directory. The kernel drops it when the process dies, so a crashed run
//! never leaves a stale lock behind.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use rustix::fs::{FlockOperation, flock};

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

fn lock_path() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "default".to_owned());
    let safe: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("spark-perf-run-{safe}.lock"))
}

/// Takes the lock for the current Docker host, or says who holds it.
pub(crate) fn acquire() -> anyhow::Result<RunLock> {
    let path = lock_path();
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the run lock {}", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another spark-perf run is using this Docker host ({}); two runs would fight for the GPU: wait for it to finish or stop it (lock: {})",
            holder.trim(),
            path.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    let _ = write!(file, "pid {}", std::process::id());
    let _ = file.flush();
    Ok(RunLock { _file: file })
}
