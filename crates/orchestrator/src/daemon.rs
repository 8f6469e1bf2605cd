//! Which Docker daemon a handle talks to, as one name for every spelling of
//! its address: what the run lock is keyed by.
//!
//! `DOCKER_HOST` unset, `unix:///var/run/docker.sock` and
//! `unix:///run/docker.sock` are the same daemon on a Debian box where
//! `/var/run` links to `/run`, and `tcp://localhost:2375` is
//! `tcp://127.0.0.1:2375`. The daemon's own ID (`docker info`'s `ID`) is the
//! same whichever way it was reached, so it is the identity; the address,
//! made canonical, is only the fallback for a daemon that reports no ID.

use std::path::Path;

use crate::docker::Docker;

impl Docker {
    /// A stable name for the daemon behind this handle, safe to use in a file
    /// name: `id-<daemon ID>`, or `host-<canonical address>` when the daemon
    /// reports no ID.
    pub async fn daemon_identity(&self) -> String {
        let id = self
            .client
            .info()
            .await
            .ok()
            .and_then(|info| info.id)
            .filter(|id| !id.trim().is_empty());
        match id {
            Some(id) => format!("id-{}", file_safe(&id)),
            None => format!(
                "host-{}",
                file_safe(&canonical_host(
                    std::env::var("DOCKER_HOST").ok().as_deref()
                ))
            ),
        }
    }
}

/// `DOCKER_HOST` (or its absence) as one spelling per daemon address: a unix
/// socket by its resolved path, a TCP address with `localhost` as
/// `127.0.0.1` and Docker's default ports made explicit.
pub fn canonical_host(docker_host: Option<&str>) -> String {
    let host = docker_host
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or("unix:///var/run/docker.sock");
    if let Some(path) = host.strip_prefix("unix://") {
        let resolved = std::fs::canonicalize(Path::new(path))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_owned());
        return format!("unix://{resolved}");
    }
    let (scheme, rest) = host.split_once("://").unwrap_or(("tcp", host));
    let scheme = match scheme {
        "http" => "tcp",
        other => other,
    };
    let rest = rest.trim_end_matches('/');
    let (name, port) = match rest.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            (name.to_owned(), port.to_owned())
        }
        _ => (
            rest.to_owned(),
            if scheme == "https" { "2376" } else { "2375" }.to_owned(),
        ),
    };
    let name = match name.to_ascii_lowercase().as_str() {
        "localhost" | "[::1]" | "ip6-localhost" => "127.0.0.1".to_owned(),
        other => other.to_owned(),
    };
    format!("{scheme}://{name}:{port}")
}

fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::canonical_host;

    #[test]
    fn every_spelling_of_the_local_socket_is_one_host() {
        let default = canonical_host(None);
        assert_eq!(canonical_host(Some("")), default);
        assert_eq!(canonical_host(Some("unix:///var/run/docker.sock")), default);
        // Where /var/run links to /run (Debian, Ubuntu), the two are one file.
        let var_run = std::fs::canonicalize("/var/run").ok();
        if var_run.as_deref() == Some(std::path::Path::new("/run")) {
            assert_eq!(canonical_host(Some("unix:///run/docker.sock")), default);
        }
    }

    #[test]
    fn tcp_spellings_of_one_address_are_one_host() {
        let one = canonical_host(Some("tcp://127.0.0.1:2375"));
        assert_eq!(canonical_host(Some("tcp://localhost:2375")), one);
        assert_eq!(canonical_host(Some("tcp://LOCALHOST:2375/")), one);
        assert_eq!(canonical_host(Some("tcp://localhost")), one);
        assert_eq!(canonical_host(Some("http://localhost:2375")), one);
        assert_ne!(canonical_host(Some("tcp://127.0.0.1:2376")), one);
        assert_ne!(canonical_host(Some("tcp://10.0.0.2:2375")), one);
    }
}
