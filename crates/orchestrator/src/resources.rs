//! What a service needs on the daemon before its container is created:
//! its image (pulled only when asked), and its networks and volumes,
//! created as compose names and labels them.

use std::collections::HashMap;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::OrchestratorError;
use crate::compose::{ComposeProject, MountSpec, Service};
use crate::docker::*;

impl Docker {
    pub(crate) async fn ensure_image(
        &self,
        service: &str,
        image: &str,
        pull: bool,
    ) -> Result<ImageFacts, OrchestratorError> {
        match self.client.inspect_image(image).await {
            Ok(inspect) => return Ok(ImageFacts::from(inspect)),
            Err(err) if is_not_found(&err) => {}
            Err(source) => {
                return Err(OrchestratorError::InspectImage {
                    service: service.to_owned(),
                    image: image.to_owned(),
                    source,
                });
            }
        }
        if !pull {
            return Err(OrchestratorError::ImageMissing {
                service: service.to_owned(),
                image: image.to_owned(),
            });
        }
        // Without a tag, the API pulls every tag of the repository.
        let (from_image, tag) = split_image_tag(image);
        let create = CreateImageOptionsBuilder::new()
            .from_image(&from_image)
            .tag(&tag)
            .build();
        let mut progress = self.client.create_image(Some(create), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|source| OrchestratorError::PullImage {
                service: service.to_owned(),
                image: image.to_owned(),
                source,
            })?;
        }
        let inspect = self.client.inspect_image(image).await.map_err(|source| {
            OrchestratorError::InspectImage {
                service: service.to_owned(),
                image: image.to_owned(),
                source,
            }
        })?;
        Ok(ImageFacts::from(inspect))
    }

    /// Creates the service's project networks that are missing; returns the
    /// names of those it created.
    pub(crate) async fn ensure_networks(
        &self,
        project: &ComposeProject,
        service: &Service,
    ) -> Result<Vec<String>, OrchestratorError> {
        let mut created = Vec::new();
        for (key, _) in &service.networks {
            let Some(network) = project.networks.get(key) else {
                continue;
            };
            match self
                .client
                .inspect_network(
                    &network.docker_name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await
            {
                Ok(_) => continue,
                Err(err) if is_not_found(&err) => {}
                Err(source) => {
                    return Err(OrchestratorError::CreateNetwork {
                        service: service.name.clone(),
                        network: network.docker_name.clone(),
                        source,
                    });
                }
            }
            if network.external {
                return Err(OrchestratorError::ExternalMissing {
                    service: service.name.clone(),
                    kind: "network",
                    name: network.docker_name.clone(),
                });
            }
            let labels = HashMap::from([
                ("com.docker.compose.network".to_owned(), network.key.clone()),
                (LABEL_PROJECT.to_owned(), project.name().to_owned()),
                (
                    "com.docker.compose.version".to_owned(),
                    COMPOSE_VERSION_LABEL.to_owned(),
                ),
            ]);
            let request = NetworkCreateRequest {
                name: network.docker_name.clone(),
                driver: Some(network.driver.clone().unwrap_or_else(|| "bridge".into())),
                labels: Some(labels),
                ..Default::default()
            };
            match self.client.create_network(request).await {
                Ok(_) => created.push(network.docker_name.clone()),
                // Created meanwhile by someone else: fine.
                Err(err) if is_conflict(&err) => {}
                Err(source) => {
                    return Err(OrchestratorError::CreateNetwork {
                        service: service.name.clone(),
                        network: network.docker_name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(created)
    }

    pub(crate) async fn ensure_volumes(
        &self,
        project: &ComposeProject,
        service: &Service,
    ) -> Result<(), OrchestratorError> {
        for mount in &service.mounts {
            let MountSpec::Volume { key, .. } = mount else {
                continue;
            };
            let Some(volume) = project.volumes.get(key) else {
                continue;
            };
            match self.client.inspect_volume(&volume.docker_name).await {
                Ok(_) => continue,
                Err(err) if is_not_found(&err) => {}
                Err(source) => {
                    return Err(OrchestratorError::CreateVolume {
                        service: service.name.clone(),
                        volume: volume.docker_name.clone(),
                        source,
                    });
                }
            }
            if volume.external {
                return Err(OrchestratorError::ExternalMissing {
                    service: service.name.clone(),
                    kind: "volume",
                    name: volume.docker_name.clone(),
                });
            }
            let request = VolumeCreateRequest {
                name: Some(volume.docker_name.clone()),
                driver: volume.driver.clone(),
                labels: Some(HashMap::from([
                    ("com.docker.compose.volume".to_owned(), volume.key.clone()),
                    (LABEL_PROJECT.to_owned(), project.name().to_owned()),
                    (
                        "com.docker.compose.version".to_owned(),
                        COMPOSE_VERSION_LABEL.to_owned(),
                    ),
                ])),
                ..Default::default()
            };
            self.client.create_volume(request).await.map_err(|source| {
                OrchestratorError::CreateVolume {
                    service: service.name.clone(),
                    volume: volume.docker_name.clone(),
                    source,
                }
            })?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct ImageFacts {
    pub(crate) id: String,
    pub(crate) repo_digests: Vec<String>,
}

impl From<bollard::models::ImageInspect> for ImageFacts {
    fn from(inspect: bollard::models::ImageInspect) -> Self {
        ImageFacts {
            id: inspect.id.unwrap_or_default(),
            repo_digests: inspect.repo_digests.unwrap_or_default(),
        }
    }
}

pub(crate) fn split_image_tag(image: &str) -> (String, String) {
    crate::image_ref::ImageRef::parse(image).pull_args(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(
            split_image_tag("nvcr.io/nvidia/vllm:25.09-py3"),
            ("nvcr.io/nvidia/vllm".into(), "25.09-py3".into())
        );
        assert_eq!(
            split_image_tag("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
        assert_eq!(
            split_image_tag("x@sha256:1"),
            ("x@sha256:1".into(), String::new())
        );
        assert_eq!(
            split_image_tag("localhost:5000/x:tag"),
            ("localhost:5000/x".into(), "tag".into())
        );
    }
}
