//! Helpers shared by the sim's loopback tests: start an in-process sim on
//! port 0, stop it, and read SSE events off a real connection.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use spark_sim::{ProfileName, Sim, SimArgs, SimExit};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every await in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A sim running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<SimExit>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the sim and returns how it ended.
    pub async fn stop(mut self) -> SimExit {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits for the sim to end on its own (a simulated crash).
    pub async fn wait(&mut self) -> SimExit {
        let task = self.task.take().expect("sim task");
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("sim stops in time")
            .expect("sim task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Test defaults: loopback, ephemeral port, no delays.
pub fn args() -> SimArgs {
    let mut args = SimArgs::defaults();
    args.host = "127.0.0.1".to_owned();
    args.port = Some(0);
    args.profile = ProfileName::Zero;
    args
}

pub async fn start(args: SimArgs) -> Running {
    let sim = Sim::bind(args).await.expect("bind");
    let addr = sim.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sim.run(async {
        let _ = stopped.await;
    }));
    let task = tokio::spawn(async move { task.await.expect("join").expect("sim run") });
    Running {
        addr,
        base: format!("http://{addr}"),
        stop: Some(stop),
        task: Some(task),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("client")
}

pub async fn post(sim: &Running, path: &str, body: serde_json::Value) -> reqwest::Response {
    tokio::time::timeout(TIMEOUT, client().post(sim.url(path)).json(&body).send())
        .await
        .expect("answer in time")
        .expect("request")
}

pub async fn get(sim: &Running, path: &str) -> reqwest::Response {
    tokio::time::timeout(TIMEOUT, client().get(sim.url(path)).send())
        .await
        .expect("answer in time")
        .expect("request")
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("JSON body")
}

/// The `data: ` payloads of an SSE body, in order.
pub fn events(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_owned()
        })
        .collect()
}

/// Reads a whole streamed body, or the bytes received before it failed.
pub async fn read_stream(response: reqwest::Response) -> (String, Option<reqwest::Error>) {
    use futures_util_lite::next_chunk;
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match next_chunk(&mut response).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (String::from_utf8(body).expect("UTF-8"), None),
            Err(err) => return (String::from_utf8(body).expect("UTF-8"), Some(err)),
        }
    }
}

mod futures_util_lite {
    pub async fn next_chunk(
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, reqwest::Error> {
        tokio::time::timeout(super::TIMEOUT, response.chunk())
            .await
            .expect("chunk in time")
    }
}

/// Reads the truth log (one JSON object per line).
pub fn truth_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("truth log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// A fresh temporary file path for this test.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("spark-sim-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}
