//! Open loop without coordinated omission: against a sim slower than the
//! arrival rate, requests go out late (every worker busy), and the
//! latencies from the scheduled time show what the late sends hide.

use spark_load::RunOptions;
use spark_results::Arrival;

use crate::common;

#[tokio::test]
async fn an_overloaded_engine_shows_lateness_and_scheduled_latency() {
    let _serial = common::serial().await;
    // Two sequences at a time, 10 tokens of 10 ms each: about 20 requests/s.
    let sim = common::start(|args| {
        args.max_num_seqs = Some(2);
        args.decode_ms = Some(10.0);
    });
    let engine = common::connect(&sim).await;
    // 60 requests/s for 1 s, at most 4 in flight.
    let mut s = common::scenario("overload", 32, 10, 1_000_000, 4);
    s.config.arrival = Arrival::Poisson { rate_rps: 60.0 };
    s.config.duration_s = Some(1.0);
    let result = common::run_one(&engine, &s, &RunOptions::default()).await;
    let n = result.requests.len();
    assert!((30..=100).contains(&n), "{n} arrivals in 1 s at 60/s");
    assert!(result.requests.iter().all(|r| r.is_ok()));
    assert!(
        result
            .requests
            .iter()
            .all(|r| r.scheduled_ms.is_some_and(|s| s <= 1000.0) && r.lateness_ms.is_some())
    );
    // Lateness grows: the queue of due requests only lengthens.
    let mut by_idx: Vec<_> = result.requests.iter().collect();
    by_idx.sort_by_key(|r| r.request_idx);
    let mean_lateness = |records: &[&spark_results::RequestRecord]| {
        records.iter().filter_map(|r| r.lateness_ms).sum::<f64>() / records.len() as f64
    };
    let first = mean_lateness(&by_idx[..10]);
    let last = mean_lateness(&by_idx[n - 10..]);
    assert!(last > first + 500.0, "lateness {first:.0} → {last:.0} ms");
    let aggregate = &result.aggregate;
    let open = aggregate.open_loop.as_ref().expect("open-loop aggregates");
    assert_eq!(open.lateness_ms.n, n as u64);
    // From the scheduled time, TTFT is far longer than from the send.
    let ttft = aggregate.ttft_ms.p50.expect("ttft");
    let scheduled = open.ttft_from_scheduled_ms.p50.expect("scheduled ttft");
    assert!(scheduled > ttft + 200.0, "{scheduled:.0} vs {ttft:.0} ms");
    let e2e = aggregate.e2e_ms.p50.expect("e2e");
    assert!(open.e2e_from_scheduled_ms.p50.expect("scheduled e2e") > e2e + 200.0);
    // The steady window's throughput is what the engine did (about 20/s),
    // not the offered 60/s.
    assert!(open.steady_window_start_s >= 0.05 && open.steady_window_end_s <= 1.0);
    let steady = open.steady_request_throughput_rps.expect("a window");
    assert!((5.0..40.0).contains(&steady), "steady {steady:.1} req/s");
    // A closed loop has none of it.
    let closed = common::run_one(
        &engine,
        &common::scenario("closed", 32, 4, 4, 2),
        &RunOptions::default(),
    )
    .await;
    assert!(closed.aggregate.open_loop.is_none());
    assert!(closed.requests.iter().all(|r| r.lateness_ms.is_none()));
}
