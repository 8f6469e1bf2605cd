//! The spark-sim Docker image on the real daemon: `cargo xtask sim-image`
//! builds it, it runs as a container, becomes healthy (its own `/health` and
//! Docker's HEALTHCHECK), streams a completion over the published port, and
//! stops within 2 s of `docker stop`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Removes the container on every path, including a failed assertion.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn docker(args: &[&str]) -> Output {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker CLI runs");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn sim_image_serves_streams_and_stops_quickly() {
    if !spark_testkit::docker_available("sim_image_serves_streams_and_stops_quickly") {
        return;
    }
    let image = spark_testkit::sim_image();
    let name = format!("spark-perf-test-sim-image-{}", std::process::id());
    let guard = ContainerGuard(name.clone());
    docker(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--label",
        "spark-perf.test=1",
        "--publish",
        "127.0.0.1::8000",
        image,
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--load-time",
        "1s",
        "--served-model-name",
        "sim-model",
    ]);
    let port_output = docker(&["port", &name, "8000/tcp"]);
    let mapping = String::from_utf8_lossy(&port_output.stdout);
    let port: u16 = mapping
        .lines()
        .next()
        .and_then(|line| line.rsplit(':').next())
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("no host port in `docker port` output {mapping:?}"));

    // The loading phase ends after 1 s; allow generous time for a slow daemon.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = http(port, "GET", "/health", "") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container never became healthy on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let request = r#"{"model":"sim-model","messages":[{"role":"user","content":"Say hello"}],
        "max_tokens":8,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}"#;
    let (status, body) = http(port, "POST", "/v1/chat/completions", request).expect("stream");
    assert_eq!(status, 200, "body: {body}");
    let n_content_events = body.matches("\"content\":\"").count();
    // The role chunk carries empty content; then one chunk per token.
    assert!(
        n_content_events > 8,
        "expected a role chunk and 8 token chunks in {body}"
    );
    assert!(
        body.contains("\"completion_tokens\":8"),
        "usage missing in {body}"
    );
    assert!(body.contains("data: [DONE]"), "no [DONE] in {body}");

    // The image's HEALTHCHECK runs `spark-sim healthcheck` (there is no shell
    // in a scratch image); Docker must come to call the container healthy.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = docker(&["inspect", "--format", "{{.State.Health.Status}}", &name]);
        let health = String::from_utf8_lossy(&health.stdout).trim().to_owned();
        if health == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Docker's health status stayed {health:?}: the image's HEALTHCHECK does not work"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let started = Instant::now();
    docker(&["stop", "--time", "10", &name]);
    let stop_time = started.elapsed();
    assert!(
        stop_time < Duration::from_secs(2),
        "docker stop took {stop_time:?}: spark-sim must exit on SIGTERM within 2 s"
    );
    let inspect = docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "0");
    drop(guard);
}
