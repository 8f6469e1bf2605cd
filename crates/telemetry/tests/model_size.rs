//! The model's size found on disk, from a command and mounts as the daemon
//! reports them: a bind-mounted GGUF, a Hugging Face cache made here (its
//! snapshot's symlinks pointing into `blobs/`, a blob shared by two links
//! counted once), a model directory, and the N/A reasons.

use std::path::{Path, PathBuf};

use spark_telemetry::model::{self, Mount, MountKind};
use spark_testkit::TempDir;

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn bind(source: &Path, target: &str) -> Mount {
    Mount {
        kind: MountKind::Bind,
        source: Some(source.to_owned()),
        name: None,
        target: target.to_owned(),
    }
}

fn write(path: &Path, n_bytes: usize) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, vec![7u8; n_bytes]).expect("write");
}

#[test]
fn a_bind_mounted_gguf() {
    let tmp = TempDir::new("telemetry-gguf");
    write(&tmp.0.join("tiny.gguf"), 4096);
    let size = model::size(
        &words("/llama-server -m /models/tiny.gguf --port 8080"),
        &[bind(&tmp.0, "/models")],
    );
    assert_eq!(size.bytes, Some(4096), "{size:?}");
    assert_eq!(size.kind.as_deref(), Some("gguf"));
    let path = tmp.0.join("tiny.gguf").display().to_string();
    assert_eq!(size.path.as_deref(), Some(path.as_str()));
    assert_eq!(size.unavailable, None);
}

#[test]
fn a_split_gguf_counts_every_part() {
    let tmp = TempDir::new("telemetry-split");
    for part in 1..=3 {
        write(&tmp.0.join(format!("big-{part:05}-of-00003.gguf")), 1000);
    }
    let size = model::size(
        &words("llama-server --model /m/big-00001-of-00003.gguf"),
        &[bind(&tmp.0, "/m")],
    );
    assert_eq!(size.bytes, Some(3000), "{size:?}");
}

/// `hub/models--ORG--NAME/{blobs,refs,snapshots}` as huggingface_hub
/// writes it; returns the snapshot directory.
fn hf_cache(root: &Path, repo: &str, rev: &str) -> PathBuf {
    let repo_dir = root
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    write(&repo_dir.join("blobs/aaaa"), 10_000);
    write(&repo_dir.join("blobs/bbbb"), 300);
    // An older revision's blob: not in the snapshot served, not counted.
    write(&repo_dir.join("blobs/cccc"), 1_000_000);
    std::fs::create_dir_all(repo_dir.join("refs")).expect("refs");
    std::fs::write(repo_dir.join("refs/main"), rev).expect("ref");
    let snapshot = repo_dir.join("snapshots").join(rev);
    std::fs::create_dir_all(snapshot.join("sub")).expect("snapshot");
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, snapshot.join(name)).expect("symlink");
    };
    link("../../blobs/aaaa", "model.safetensors");
    link("../../blobs/bbbb", "config.json");
    // The same blob under a second name is one file on disk.
    link("../../blobs/bbbb", "generation_config.json");
    std::os::unix::fs::symlink("../../../blobs/bbbb", snapshot.join("sub/tokenizer.json"))
        .expect("symlink");
    let old = repo_dir.join("snapshots/0ld");
    std::fs::create_dir_all(&old).expect("old snapshot");
    std::os::unix::fs::symlink("../../blobs/cccc", old.join("model.safetensors")).expect("old");
    snapshot
}

#[test]
fn a_hugging_face_cache_counts_each_blob_once() {
    let tmp = TempDir::new("telemetry-hf");
    let snapshot = hf_cache(&tmp.0, "acme/tiny-llm", "0123abcd");
    let size = model::size(
        &words("vllm serve acme/tiny-llm --port 8000"),
        &[bind(&tmp.0, "/root/.cache/huggingface")],
    );
    assert_eq!(size.bytes, Some(10_300), "{size:?}");
    assert_eq!(size.kind.as_deref(), Some("hf_cache"));
    let path = snapshot.display().to_string();
    assert_eq!(size.path.as_deref(), Some(path.as_str()));
}

#[test]
fn a_model_directory() {
    let tmp = TempDir::new("telemetry-dir");
    write(&tmp.0.join("llama/model.safetensors"), 5000);
    write(&tmp.0.join("llama/config.json"), 50);
    let size = model::size(
        &words("vllm serve /models/llama"),
        &[bind(&tmp.0, "/models")],
    );
    assert_eq!(size.bytes, Some(5050), "{size:?}");
    assert_eq!(size.kind.as_deref(), Some("directory"));
}

#[test]
fn what_cannot_be_found_says_why() {
    let tmp = TempDir::new("telemetry-na");
    let mounts = [bind(&tmp.0, "/models")];
    let reason = |command: &str, mounts: &[Mount]| {
        let size = model::size(&words(command), mounts);
        assert_eq!(size.bytes, None, "{size:?}");
        size.unavailable.expect("a reason")
    };
    assert!(reason("llama-server -m /opt/model.gguf", &mounts).contains("inside the image"));
    assert!(reason("spark-sim --port 8000", &mounts).contains("names no model"));
    assert!(
        reason("vllm serve acme/absent", &mounts).contains("no Hugging Face cache of acme/absent")
    );
    assert!(reason("llama-server -m /models/missing.gguf", &mounts).contains("cannot be read"));
    let volume = Mount {
        kind: MountKind::Volume,
        source: None,
        name: Some("models".to_owned()),
        target: "/data".to_owned(),
    };
    assert!(reason("llama-server -m /data/x.gguf", &[volume]).contains("named volume models"));
}
