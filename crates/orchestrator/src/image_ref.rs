//! The one parser of image references, `[registry[:port]/]path[:tag][@digest]`,
//! for everything that needs a part of one: the pull (repository and tag),
//! flavor detection (the repository) and the `latest`-tag warning (the tag).
//!
//! A colon is a tag separator only after the last slash: in
//! `localhost:5000/x` it belongs to the registry's port. A digest
//! (`@sha256:…`) pins the image whatever the tag says.

/// The parts of an image reference, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ImageRef<'a> {
    /// Registry, port and path, without tag or digest (`localhost:5000/x`).
    pub(crate) repository: &'a str,
    /// The tag, when one is written.
    pub(crate) tag: Option<&'a str>,
    /// The digest after `@` (`sha256:…`), when one is written.
    pub(crate) digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    /// Splits `image`; never fails (an odd reference is the daemon's to reject).
    pub(crate) fn parse(image: &'a str) -> ImageRef<'a> {
        let (name, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (image, None),
        };
        let last_slash = name.rfind('/').map_or(0, |p| p + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(colon) => (
                &name[..last_slash + colon],
                Some(&name[last_slash + colon + 1..]),
            ),
            None => (name, None),
        };
        ImageRef {
            repository,
            tag,
            digest,
        }
    }

    /// What the pull API takes: `fromImage` and `tag`. A digest reference is
    /// passed whole with no tag; without a tag the API would pull every tag
    /// of the repository, so `latest` is named, as `docker pull` does.
    pub(crate) fn pull_args(&self, image: &str) -> (String, String) {
        if self.digest.is_some() {
            (image.to_owned(), String::new())
        } else {
            (
                self.repository.to_owned(),
                self.tag.unwrap_or("latest").to_owned(),
            )
        }
    }

    /// Whether the reference floats: no digest, and no tag or `latest`.
    pub(crate) fn is_floating(&self) -> bool {
        self.digest.is_none() && matches!(self.tag, None | Some("latest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(image: &str) -> (&str, Option<&str>, Option<&str>) {
        let r = ImageRef::parse(image);
        (r.repository, r.tag, r.digest)
    }

    #[test]
    fn references() {
        assert_eq!(
            parts("nvcr.io/nvidia/vllm:25.09-py3"),
            ("nvcr.io/nvidia/vllm", Some("25.09-py3"), None)
        );
        assert_eq!(parts("localhost:5000/x"), ("localhost:5000/x", None, None));
        assert_eq!(
            parts("localhost:5000/x:tag"),
            ("localhost:5000/x", Some("tag"), None)
        );
        assert_eq!(parts("x/y@sha256:abc"), ("x/y", None, Some("sha256:abc")));
        assert_eq!(
            parts("localhost:5000/x:1.0@sha256:abc"),
            ("localhost:5000/x", Some("1.0"), Some("sha256:abc"))
        );
        assert_eq!(parts("spark-sim"), ("spark-sim", None, None));
    }

    #[test]
    fn pull_arguments() {
        let pull = |image: &str| ImageRef::parse(image).pull_args(image);
        assert_eq!(
            pull("nvcr.io/nvidia/vllm:25.09-py3"),
            ("nvcr.io/nvidia/vllm".into(), "25.09-py3".into())
        );
        assert_eq!(
            pull("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
        assert_eq!(
            pull("localhost:5000/x:tag"),
            ("localhost:5000/x".into(), "tag".into())
        );
        assert_eq!(pull("x@sha256:1"), ("x@sha256:1".into(), String::new()));
    }

    #[test]
    fn floating_tags() {
        assert!(ImageRef::parse("vllm/vllm-openai").is_floating());
        assert!(ImageRef::parse("localhost:5000/x:latest").is_floating());
        assert!(ImageRef::parse("localhost:5000/x").is_floating());
        assert!(!ImageRef::parse("localhost:5000/x:0.9").is_floating());
        assert!(!ImageRef::parse("x@sha256:abc").is_floating());
        assert!(!ImageRef::parse("x:latest@sha256:abc").is_floating());
    }
}
