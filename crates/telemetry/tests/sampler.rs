//! The sampler on a real runtime: readings on the interval, one at each
//! scenario's start, windows summarised, a failing probe N/A with its first
//! reason, and a live process read through `/proc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spark_results::ModelSize;
use spark_telemetry::{Probe, ProcessProbe, ReadFuture, Reading, Sampler};

/// Memory that grows by 1 MiB per reading.
struct Growing(Arc<AtomicU64>);

impl Probe for Growing {
    fn source(&self) -> String {
        "growing".to_owned()
    }

    fn read(&mut self) -> ReadFuture<'_> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(Reading {
                memory_bytes: Some((n + 1) << 20),
                cpu_percent: Some(n as f64),
            })
        })
    }
}

struct Failing;

impl Probe for Failing {
    fn source(&self) -> String {
        "docker stats".to_owned()
    }

    fn read(&mut self) -> ReadFuture<'_> {
        Box::pin(async { Err("no such container: abc".to_owned()) })
    }
}

#[tokio::test]
async fn scenarios_get_their_own_peaks() {
    let n_reads = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::start(
        Box::new(Growing(Arc::clone(&n_reads))),
        Duration::from_millis(20),
    );
    sampler.scenario_started("warmup");
    tokio::time::sleep(Duration::from_millis(100)).await;
    sampler.scenario_ended("warmup");
    sampler.scenario_started("throughput");
    tokio::time::sleep(Duration::from_millis(100)).await;
    sampler.scenario_ended("throughput");
    let recording = sampler.finish().await;
    let telemetry = recording.into_telemetry(ModelSize::default());
    assert_eq!(telemetry.unavailable, None);
    assert_eq!(telemetry.interval_ms, 20);
    let [warmup, throughput] = &telemetry.scenarios[..] else {
        panic!("two windows: {:?}", telemetry.scenarios);
    };
    assert!(warmup.n_samples >= 2, "{warmup:?}");
    assert!(warmup.end_s <= throughput.start_s);
    // Memory only grows, so the later scenario's peak is higher.
    assert!(throughput.memory_peak_bytes > warmup.memory_peak_bytes);
    assert!(warmup.memory_mean_bytes <= warmup.memory_peak_bytes);
    assert!(telemetry.samples.len() as u64 <= n_reads.load(Ordering::SeqCst));
    assert!(telemetry.samples.windows(2).all(|w| w[0].t_s <= w[1].t_s));
}

#[tokio::test]
async fn a_probe_that_never_reads_is_na_once_with_its_reason() {
    let sampler = Sampler::start(Box::new(Failing), Duration::from_millis(10));
    sampler.scenario_started("latency");
    tokio::time::sleep(Duration::from_millis(50)).await;
    sampler.scenario_ended("latency");
    let recording = sampler.finish().await;
    assert!(recording.n_errors() >= 2);
    let telemetry = recording.into_telemetry(ModelSize::default());
    assert_eq!(
        telemetry.unavailable.as_deref(),
        Some("docker stats: no such container: abc")
    );
    assert_eq!(telemetry.scenarios[0].memory_peak_bytes, None);
}

#[tokio::test]
async fn a_child_process_is_read_through_proc() {
    let mut child = tokio::process::Command::new("sleep")
        .arg("5")
        .kill_on_drop(true)
        .spawn()
        .expect("sleep");
    let pid = child.id().expect("pid");
    let sampler = Sampler::start(Box::new(ProcessProbe::new(pid)), Duration::from_millis(20));
    sampler.scenario_started("s");
    tokio::time::sleep(Duration::from_millis(80)).await;
    sampler.scenario_ended("s");
    let telemetry = sampler.finish().await.into_telemetry(ModelSize::default());
    let _ = child.kill().await;
    assert_eq!(telemetry.source, Some(format!("/proc/{pid}")));
    let peak = telemetry.scenarios[0].memory_peak_bytes.expect("VmRSS");
    assert!(peak > 100 * 1024, "{peak}");
}

#[tokio::test]
async fn a_scenario_shorter_than_the_interval_still_has_a_reading() {
    let sampler = Sampler::start(
        Box::new(Growing(Arc::new(AtomicU64::new(0)))),
        Duration::from_secs(3600),
    );
    // Let the first reading (at once) happen, then a scenario of no time.
    tokio::time::sleep(Duration::from_millis(20)).await;
    sampler.scenario_started("instant");
    sampler.scenario_ended("instant");
    let telemetry = sampler.finish().await.into_telemetry(ModelSize::default());
    let instant = &telemetry.scenarios[0];
    assert_eq!(instant.n_samples, 1, "{instant:?}");
    assert!(instant.memory_peak_bytes.is_some(), "{instant:?}");
}
