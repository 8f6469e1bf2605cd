//! The run lock: one `spark-perf run` per Docker daemon, whoever starts it,
//! because two runs would fight for the GPU and each would measure the
//! other's load.
//!
//! An advisory `flock` on a file named after the daemon's identity
//! ([`spark_orchestrator::Docker::daemon_identity`]: its ID, so every
//! spelling of `DOCKER_HOST` that reaches one daemon takes one lock), in a
//! directory every user of the host shares (`/run/lock/spark-perf`, else
//! `/tmp/spark-perf-locks`; `SPARK_PERF_LOCK_DIR` overrides it, as the tests
//! do to run side by side). The directory is sticky and world-writable like
//! `/tmp` and the file is readable and writable by all, so a second user's
//! run finds the first user's lock. The kernel drops the lock when the
//! process dies, so a crashed run never leaves a stale lock behind.

use std::fs::{File, Permissions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rustix::fs::{FlockOperation, flock};

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

/// The directory shared by every user of the host, unless `overridden`
/// (`SPARK_PERF_LOCK_DIR`).
fn lock_dir(overridden: Option<std::ffi::OsString>) -> PathBuf {
    if let Some(dir) = overridden.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let run_lock = Path::new("/run/lock");
    if run_lock.is_dir() {
        run_lock.join("spark-perf")
    } else {
        Path::new("/tmp").join("spark-perf-locks")
    }
}

fn lock_path(dir: &Path, identity: &str) -> PathBuf {
    dir.join(format!("run-{identity}.lock"))
}

/// Creates the shared directory as sticky and world-writable, like `/tmp`.
fn create_shared_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the run lock directory {}", dir.display()))?;
    // Ours: open it to every user (the umask narrowed it). Someone else's
    // directory keeps its mode.
    let _ = std::fs::set_permissions(dir, Permissions::from_mode(0o1777));
    Ok(())
}

/// Opens the lock file read-write, or read-only when another user created
/// it without write access for us (`flock` needs only an open file).
fn open_lock_file(path: &Path) -> anyhow::Result<File> {
    let opened = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    let file = match opened {
        Ok(file) => {
            let _ = file.set_permissions(Permissions::from_mode(0o666));
            file
        }
        Err(write_err) => File::open(path).map_err(|_| write_err).with_context(|| {
            format!(
                "cannot open the run lock {}: give every user of this Docker host read access to it",
                path.display()
            )
        })?,
    };
    Ok(file)
}

/// Takes the lock for the daemon named `identity`, or says who holds it.
pub(crate) fn acquire(identity: &str) -> anyhow::Result<RunLock> {
    acquire_in(&lock_dir(std::env::var_os("SPARK_PERF_LOCK_DIR")), identity)
}

fn acquire_in(dir: &Path, identity: &str) -> anyhow::Result<RunLock> {
    create_shared_dir(dir)?;
    let path = lock_path(dir, identity);
    let mut file = open_lock_file(&path)?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another spark-perf run is using this Docker host ({}); two runs would fight for the GPU: wait for it to finish or stop it (lock: {})",
            holder.trim(),
            path.display()
        );
    }
    if file.set_len(0).is_ok() && file.rewind().is_ok() {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown user".to_owned());
        let _ = write!(file, "pid {}, {user}", std::process::id());
        let _ = file.flush();
    }
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_shared_by_every_user_not_per_user() {
        // Not XDG_RUNTIME_DIR (one user's) and not TMPDIR (one session's).
        let dir = lock_dir(None);
        assert!(
            dir == Path::new("/run/lock/spark-perf") || dir == Path::new("/tmp/spark-perf-locks"),
            "{}",
            dir.display()
        );
        assert_eq!(lock_dir(Some("/x".into())), Path::new("/x"));
        assert_eq!(lock_dir(Some("".into())), dir);
    }

    #[test]
    fn a_second_holder_of_one_daemon_is_refused_and_files_are_open_to_all() {
        let root = std::env::temp_dir().join(format!("spark-perf-lock-{}", std::process::id()));
        let dir = root.join("locks");
        let first = acquire_in(&dir, "id-ABC").expect("first lock");
        let second = acquire_in(&dir, "id-ABC").expect_err("second holder of one daemon");
        assert!(
            second
                .to_string()
                .contains("another spark-perf run is using this Docker host"),
            "{second}"
        );
        // Another daemon is another lock.
        let other = acquire_in(&dir, "id-XYZ").expect("another daemon's lock");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o1777);
        assert_eq!(mode(&lock_path(&dir, "id-ABC")), 0o666);
        drop((first, other));
        acquire_in(&dir, "id-ABC").expect("released when dropped");
        let _ = std::fs::remove_dir_all(root);
    }
}
