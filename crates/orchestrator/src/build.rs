//! A service's `build:` through the Docker Engine API: the context directory
//! streamed as a tar ([`context`]), `POST /build` with the Dockerfile, the
//! build arguments, the target and the tag compose would give it, and the
//! build's output read line by line.
//!
//! Architecture Invariant: build-argument values never leave the build
//! request. Every output line is redacted of them before it is logged,
//! reported or kept for an error, and no error or log names a value (the
//! request's query, which carries them, is never logged by the crate).

mod context;

use std::collections::{HashMap, VecDeque};

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use crate::OrchestratorError;
use crate::compose::{BuildSpec, Service};
use crate::docker::Docker;
use crate::redact::Redactor;

/// The number of output lines a failed build's error keeps.
pub(crate) const BUILD_TAIL_LINES: usize = 20;

impl Docker {
    /// Builds `service`'s image from its `build:` and tags it with the
    /// service's image name. Each line of the build's output, redacted, goes
    /// to `report` and to tracing (debug).
    pub(crate) async fn build_image(
        &self,
        service: &Service,
        build: &BuildSpec,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), OrchestratorError> {
        let failed = |reason: String, output_tail: Vec<String>| OrchestratorError::BuildImage {
            service: service.name.clone(),
            image: service.image.clone(),
            context: build.context.clone(),
            reason,
            output_tail,
        };
        let context_error = |source| OrchestratorError::BuildContext {
            service: service.name.clone(),
            context: build.context.clone(),
            source,
        };
        let entries = {
            let (dir, dockerfile) = (build.context.clone(), build.dockerfile.clone());
            tokio::task::spawn_blocking(move || context::list(&dir, &dockerfile))
                .await
                .map_err(|join| context_error(std::io::Error::other(join.to_string())))?
                .map_err(context_error)?
        };
        tracing::info!(
            service = %service.name,
            image = %service.image,
            context = %build.context.display(),
            n_files = entries.len(),
            "building image"
        );
        report(&format!(
            "building {} from {}",
            service.image,
            build.context.display()
        ));

        let redactor = arg_redactor(build);
        let buildargs: HashMap<&str, &str> = build
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let labels: HashMap<&str, &str> = build
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile(&build.dockerfile)
            .t(&service.image)
            .rm(true)
            // A failed build's intermediate container is removed too.
            .forcerm(true)
            .nocache(build.no_cache)
            .buildargs(&buildargs)
            .labels(&labels);
        if let Some(target) = &build.target {
            options = options.target(target);
        }

        let (chunks, writer) = context::stream(build.context.clone(), entries);
        let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
            let chunk = chunks.recv().await?;
            Some((chunk.map(Into::into), chunks))
        });
        let mut output =
            self.client
                .build_image(options.build(), None, Some(bollard::body_try_stream(body)));

        let mut tail: VecDeque<String> = VecDeque::with_capacity(BUILD_TAIL_LINES);
        let mut keep = |line: String, tail: &mut VecDeque<String>| {
            tracing::debug!(service = %service.name, "build: {line}");
            report(&line);
            if tail.len() == BUILD_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        };
        let mut failure = None;
        while let Some(step) = output.next().await {
            match step {
                Ok(info) => {
                    let text = info.stream.or(info.status).unwrap_or_default();
                    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                        keep(redactor.redact(line), &mut tail);
                    }
                }
                Err(err) => {
                    // `errorDetail` of the stream, or the request failing.
                    let reason = match err {
                        bollard::errors::Error::DockerStreamError { error } => error,
                        other => other.to_string(),
                    };
                    failure = Some(redactor.redact(&reason));
                    break;
                }
            }
        }
        drop(output);
        // The tar thread's own error says more than the request it broke.
        if let Ok(Err(source)) = writer.await
            && source.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(context_error(source));
        }
        if let Some(reason) = failure {
            return Err(failed(reason, tail.into()));
        }
        tracing::info!(service = %service.name, image = %service.image, "built image");
        Ok(())
    }
}

/// Hides the build arguments' values in the build's output, from 3
/// characters on: hiding every `1` or `on` would garble `Step 1/5` and hide
/// nothing a secret is made of. `NAME=value` with a secret-looking name is
/// masked whatever the value, as in log tails.
fn arg_redactor(build: &BuildSpec) -> Redactor {
    Redactor::from_values(
        build
            .args
            .values()
            .filter(|value| value.len() >= 3)
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arg_values_are_redacted_from_the_output() {
        let build = BuildSpec {
            context: "/ctx".into(),
            dockerfile: "Dockerfile".into(),
            args: [
                ("VERSION".to_owned(), "1.2.3".to_owned()),
                ("API_KEY".to_owned(), "abcd".to_owned()),
                ("N".to_owned(), "1".to_owned()),
            ]
            .into(),
            target: None,
            labels: Default::default(),
            no_cache: false,
        };
        let redactor = arg_redactor(&build);
        assert_eq!(
            redactor.redact("Step 1/5 : LABEL v=1.2.3 with abcd; API_KEY=x"),
            "Step 1/5 : LABEL v=[REDACTED] with [REDACTED]; API_KEY=[REDACTED]"
        );
        assert!(!format!("{build:?}").contains("1.2.3"));
    }
}
