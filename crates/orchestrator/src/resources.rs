//! What a service needs on the daemon before its container is created:
//! its image (built from `build:` when missing or asked, pulled only when
//! asked), and its networks and volumes, created as compose names and
//! labels them.

use std::collections::HashMap;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::OrchestratorError;
use crate::compose::{ComposeProject, MountSpec, Service};
use crate::docker::*;

impl Docker {
    /// The service's image: built from its `build:` when missing locally (or
    /// always with `options.build`), else pulled when missing and
    /// `options.pull`. Build output and pull progress go to `report`.
    pub(crate) async fn ensure_image(
        &self,
        definition: &Service,
        options: StartOptions,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ImageFacts, OrchestratorError> {
        let service = definition.name.as_str();
        let image = definition.image.as_str();
        let inspect_error = |source| OrchestratorError::InspectImage {
            service: service.to_owned(),
            image: image.to_owned(),
            source,
        };
        if let (Some(build), true) = (&definition.build, options.build) {
            self.build_image(definition, build, report).await?;
            let inspect = self
                .client
                .inspect_image(image)
                .await
                .map_err(inspect_error)?;
            return Ok(ImageFacts::from(inspect));
        }
        match self.client.inspect_image(image).await {
            Ok(inspect) => return Ok(ImageFacts::from(inspect)),
            Err(err) if is_not_found(&err) => {}
            Err(source) => return Err(inspect_error(source)),
        }
        if let Some(build) = &definition.build {
            self.build_image(definition, build, report).await?;
        } else if options.pull {
            self.pull_image(service, image, report).await?;
        } else {
            return Err(OrchestratorError::ImageMissing {
                service: service.to_owned(),
                image: image.to_owned(),
            });
        }
        let inspect = self
            .client
            .inspect_image(image)
            .await
            .map_err(inspect_error)?;
        Ok(ImageFacts::from(inspect))
    }

    async fn pull_image(
        &self,
        service: &str,
        image: &str,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), OrchestratorError> {
        // Without a tag, the API pulls every tag of the repository.
        let (from_image, tag) = split_image_tag(image);
        let create = CreateImageOptionsBuilder::new()
            .from_image(&from_image)
            .tag(&tag)
            .build();
        let mut progress = self.client.create_image(Some(create), None, None);
        while let Some(step) = progress.next().await {
            let info = step.map_err(|source| OrchestratorError::PullImage {
                service: service.to_owned(),
                image: image.to_owned(),
                source,
            })?;
            if let Some(status) = info.status {
                let layer = info.id.map(|id| format!("{id}: ")).unwrap_or_default();
                report(&format!("pulling {image}: {layer}{status}"));
            }
        }
        Ok(())
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
