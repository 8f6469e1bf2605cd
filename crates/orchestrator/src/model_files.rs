//! What a started container runs and mounts, as the daemon reports it, so
//! the CLI can find the model's files on the host (the telemetry crate
//! measures them; bollard's types stay here).
//!
//! The command here is the one the container runs, not masked: it is for
//! locating a model path or repository only and must never be logged or
//! written (provenance has the masked one). Its `Debug` shows its length.

use bollard::models::MountPoint;

/// The container's effective command and mounts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ModelFiles {
    command: Vec<String>,
    mounts: Vec<ContainerMount>,
}

/// One mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMount {
    pub kind: ContainerMountKind,
    /// The host path of a bind; the data directory of a volume on the
    /// daemon's host (`/var/lib/docker/volumes/NAME/_data`).
    pub source: Option<String>,
    /// A volume's name.
    pub name: Option<String>,
    /// The path inside the container.
    pub target: String,
}

/// How a mount gets into the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerMountKind {
    Bind,
    Volume,
    /// tmpfs, npipe, cluster, image mounts.
    Other,
}

impl ModelFiles {
    /// From the inspected container: entrypoint then command, and `Mounts`.
    pub(crate) fn from_inspect(
        entrypoint: &[String],
        cmd: &[String],
        mounts: &[MountPoint],
    ) -> ModelFiles {
        ModelFiles {
            command: entrypoint.iter().chain(cmd).cloned().collect(),
            mounts: mounts
                .iter()
                .filter_map(|mount| {
                    Some(ContainerMount {
                        kind: match mount.typ.as_deref() {
                            Some("bind") => ContainerMountKind::Bind,
                            Some("volume") => ContainerMountKind::Volume,
                            _ => ContainerMountKind::Other,
                        },
                        source: mount.source.clone().filter(|s| !s.is_empty()),
                        name: mount.name.clone().filter(|s| !s.is_empty()),
                        target: mount.destination.clone()?,
                    })
                })
                .collect(),
        }
    }

    /// The effective command (entrypoint, then command), unmasked: for
    /// finding the model, never for logs or reports.
    pub fn command(&self) -> &[String] {
        &self.command
    }

    /// The container's mounts.
    pub fn mounts(&self) -> &[ContainerMount] {
        &self.mounts
    }
}

impl std::fmt::Debug for ModelFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFiles")
            .field("command", &format_args!("[{} words]", self.command.len()))
            .field("mounts", &self.mounts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_from_inspect_and_a_debug_without_the_command() {
        let mounts = [
            MountPoint {
                typ: Some("bind".to_owned()),
                source: Some("/srv/models".to_owned()),
                destination: Some("/models".to_owned()),
                ..MountPoint::default()
            },
            MountPoint {
                typ: Some("volume".to_owned()),
                name: Some("hf".to_owned()),
                source: Some("/var/lib/docker/volumes/hf/_data".to_owned()),
                destination: Some("/root/.cache/huggingface".to_owned()),
                ..MountPoint::default()
            },
            MountPoint {
                typ: Some("tmpfs".to_owned()),
                source: Some(String::new()),
                destination: Some("/tmp".to_owned()),
                ..MountPoint::default()
            },
        ];
        let files = ModelFiles::from_inspect(
            &["/llama-server".to_owned()],
            &["--api-key".to_owned(), "s3cret".to_owned()],
            &mounts,
        );
        assert_eq!(files.command().len(), 3);
        assert_eq!(files.mounts()[0].kind, ContainerMountKind::Bind);
        assert_eq!(files.mounts()[1].name.as_deref(), Some("hf"));
        assert_eq!(files.mounts()[2].kind, ContainerMountKind::Other);
        assert_eq!(files.mounts()[2].source, None);
        let debug = format!("{files:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
