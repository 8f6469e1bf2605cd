//! One container of the project, as compose creates it: a stopped one of the
//! same name replaced, the create request sent, the networks beyond the
//! first connected, the secret and config files that are values copied in,
//! started; and, after the start, the host port Docker assigned. Shared by
//! the engine and the services it depends on.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use tokio::time::Instant;

use crate::OrchestratorError;
use crate::compose::{AssignedPort, ComposeProject, SecretFile, Service};
use crate::create_body::{container_body, endpoint};
use crate::docker::{Docker, is_not_found};

/// A container of that name that was already there.
pub(crate) enum Existing {
    /// None, or a stopped one that was removed or set aside.
    Replaced,
    /// One that runs (its ID): the engine refuses it, a dependency uses it.
    Running(String),
}

impl Docker {
    /// Makes room for the service's container: an old, stopped container of
    /// the same name is replaced, as `up` does; one that was running before
    /// the run (displaced by it) is set aside under another name and
    /// restored at the end. A running one is left alone and returned.
    pub(crate) async fn replace_stopped(
        &self,
        service: &str,
        definition: &Service,
    ) -> Result<Existing, OrchestratorError> {
        let name = &definition.container_name;
        match self
            .client
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(existing) => {
                let id = existing.id.clone().unwrap_or_default();
                if existing.state.as_ref().and_then(|s| s.running) == Some(true) {
                    return Ok(Existing::Running(id));
                }
                if !self.set_aside(&id).await {
                    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
                    self.client
                        .remove_container(name, Some(remove))
                        .await
                        .map_err(|source| OrchestratorError::RemoveContainer {
                            service: service.to_owned(),
                            container: name.clone(),
                            source,
                        })?;
                }
                Ok(Existing::Replaced)
            }
            Err(err) if is_not_found(&err) => Ok(Existing::Replaced),
            Err(source) => Err(OrchestratorError::InspectContainer {
                service: service.to_owned(),
                container: name.clone(),
                source,
            }),
        }
    }

    /// Sends the create request compose would send; returns the container
    /// ID and how long the daemon took.
    pub(crate) async fn create(
        &self,
        project: &ComposeProject,
        definition: &Service,
        image_id: &str,
    ) -> Result<(String, Duration), OrchestratorError> {
        let body = container_body(project, definition, image_id);
        let clock = Instant::now();
        let create = CreateContainerOptionsBuilder::new()
            .name(&definition.container_name)
            .build();
        let created = self
            .client
            .create_container(Some(create), body)
            .await
            .map_err(|source| OrchestratorError::CreateContainer {
                service: definition.name.clone(),
                container: definition.container_name.clone(),
                image: definition.image.clone(),
                source,
            })?;
        tracing::info!(service = %definition.name, container = %definition.container_name, "created container");
        Ok((created.id, clock.elapsed()))
    }

    /// Connects the networks beyond the first, copies the value secrets and
    /// configs in, and starts the created container `id`.
    pub(crate) async fn connect_copy_start(
        &self,
        project: &ComposeProject,
        definition: &Service,
        id: &str,
    ) -> Result<(), OrchestratorError> {
        let service = &definition.name;
        for (key, aliases) in definition.networks.iter().skip(1) {
            let Some(network) = project.networks.get(key) else {
                continue;
            };
            let request = NetworkConnectRequest {
                container: id.to_owned(),
                endpoint_config: Some(endpoint(definition, aliases)),
            };
            if let Err(source) = self
                .client
                .connect_network(&network.docker_name, request)
                .await
            {
                return Err(OrchestratorError::CreateNetwork {
                    service: service.clone(),
                    network: network.docker_name.clone(),
                    source,
                });
            }
        }
        let files = definition.secret_files();
        if !files.is_empty() {
            // Compose copies them in the same way (the archive API, before
            // the start): the values never touch the host's disk.
            let options = UploadToContainerOptionsBuilder::new().path("/").build();
            let archive = secrets_archive(files);
            self.client
                .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
                .await
                .map_err(|source| OrchestratorError::CopyFiles {
                    service: service.clone(),
                    container: definition.container_name.clone(),
                    source,
                })?;
        }
        self.client
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|source| OrchestratorError::StartContainer {
                service: service.clone(),
                container: definition.container_name.clone(),
                source,
            })?;
        tracing::info!(service = %service, container = %definition.container_name, "started container");
        Ok(())
    }

    /// The host port Docker published for `port` of the started container
    /// `id` (`ports: ["8000"]`).
    pub(crate) async fn assigned_host_port(
        &self,
        definition: &Service,
        id: &str,
        port: &AssignedPort,
    ) -> Result<u16, OrchestratorError> {
        let inspect = self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|source| OrchestratorError::InspectContainer {
                service: definition.name.clone(),
                container: definition.container_name.clone(),
                source,
            })?;
        published_port(&inspect, port).ok_or_else(|| OrchestratorError::NoAssignedPort {
            service: definition.name.clone(),
            container: definition.container_name.clone(),
            container_port: port.container_port,
        })
    }
}

/// The host port of `port` in an inspected container's
/// `NetworkSettings.Ports`: the binding on `port.host_ip` when one is
/// named, else the first IPv4 one (Docker publishes on `0.0.0.0` and `::`).
pub(crate) fn published_port(
    inspect: &ContainerInspectResponse,
    port: &AssignedPort,
) -> Option<u16> {
    let ports = inspect.network_settings.as_ref()?.ports.as_ref()?;
    let bindings = ports
        .get(&format!("{}/tcp", port.container_port))?
        .as_ref()?;
    let parsed = bindings.iter().filter_map(|b| {
        let host_port = b.host_port.as_deref()?.parse::<u16>().ok()?;
        Some((b.host_ip.as_deref().unwrap_or(""), host_port))
    });
    let chosen: Vec<(&str, u16)> = parsed.collect();
    match port.host_ip.as_deref() {
        Some(ip) => chosen.iter().find(|(h, _)| *h == ip),
        None => chosen
            .iter()
            .find(|(h, _)| !h.contains(':'))
            .or(chosen.first()),
    }
    .map(|(_, p)| *p)
}

/// An uncompressed tar of the files, at their absolute targets (relative to
/// `/`), with their mode and owner.
pub(crate) fn secrets_archive(files: &[SecretFile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let content = file.content.expose().as_bytes();
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(file.mode);
        header.set_uid(
            file.uid
                .as_deref()
                .and_then(|u| u.parse().ok())
                .unwrap_or(0),
        );
        header.set_gid(
            file.gid
                .as_deref()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
        );
        header.set_entry_type(tar::EntryType::Regular);
        let path = file.target.trim_start_matches('/');
        // In memory, so the only failure is a path tar cannot hold, which
        // the compose model already refused.
        if let Err(err) = builder.append_data(&mut header, path, content) {
            tracing::warn!(target = %file.target, error = %err, "cannot archive a secret file");
        }
    }
    builder.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{NetworkSettings, PortBinding};
    use std::collections::HashMap;

    fn inspect(bindings: &[(&str, &str)]) -> ContainerInspectResponse {
        let list = bindings
            .iter()
            .map(|(ip, port)| PortBinding {
                host_ip: Some((*ip).to_owned()),
                host_port: Some((*port).to_owned()),
            })
            .collect();
        ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                ports: Some(HashMap::from([("8000/tcp".to_owned(), Some(list))])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_assigned_port_is_the_ipv4_binding_or_the_one_on_the_named_address() {
        let both = inspect(&[("::", "49154"), ("0.0.0.0", "49153")]);
        let any = AssignedPort {
            container_port: 8000,
            host_ip: None,
        };
        assert_eq!(published_port(&both, &any), Some(49153));
        let local = inspect(&[("127.0.0.1", "40001")]);
        let on_local = AssignedPort {
            container_port: 8000,
            host_ip: Some("127.0.0.1".to_owned()),
        };
        assert_eq!(published_port(&local, &on_local), Some(40001));
        assert_eq!(published_port(&both, &on_local), None);
        let other = AssignedPort {
            container_port: 9000,
            host_ip: None,
        };
        assert_eq!(published_port(&both, &other), None);
    }
}
