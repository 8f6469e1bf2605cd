//! A busy client does not delay its own timestamps: on a direct connection
//! a chunk's arrival is the kernel's receive time of the read that brought
//! it (SO_TIMESTAMPNS), not the moment the worker got to read it.
//!
//! The client's only thread (the test's `current_thread` runtime runs the
//! workers) is blocked with `std::thread::sleep` while the first tokens
//! arrive. The second token comes long after the stall: for TCP the kernel
//! keeps the time of the *latest* segment merged into a queued buffer, so
//! the first token's time is exact only when nothing else of that stream
//! arrived while the client was busy (docs/ARCHITECTURE.md).

use std::time::Duration;

use spark_load::RunOptions;

use crate::common;

const MS: i64 = 1_000_000;
/// The client is busy for this long.
const STALL: Duration = Duration::from_millis(300);

fn mono_ns() -> i64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec as i64
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_blocked_client_keeps_the_kernel_receive_time() {
    let _serial = common::serial().await;
    let sim = common::start(|args| {
        // The first token ~120 ms after the request, well inside the stall;
        // the second 1 s after it, well after.
        args.prefill_base_ms = Some(120.0);
        args.decode_ms = Some(1000.0);
    });
    let engine = common::connect(&sim).await;
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let scenario = common::scenario("rxstamp", 16, 2, 4, 4);
        // Blocks this runtime's only thread once the requests are out.
        let stall = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let from = mono_ns();
            std::thread::sleep(STALL);
            (from, mono_ns())
        });
        let result = common::run_one(&engine, &scenario, &RunOptions::default()).await;
        let (stall_from, stall_to) = stall.await.expect("the stall task");
        assert_eq!(
            result.aggregate.n_ok, 4,
            "{:?}",
            result.aggregate.failures_by_class
        );
        let ids: Vec<&str> = result
            .requests
            .iter()
            .map(|r| r.request_id.as_str())
            .collect();
        let truth = sim.truth_for(&ids);
        let mut problems = Vec::new();
        for record in &result.requests {
            let t = &truth[&record.request_id];
            let sent_first = t.first_token_mono_ns.expect("a first token") as i64;
            let seen_first = record.first_token_mono_ns.expect("a first token") as i64;
            // The setup this test needs: the request out before the stall,
            // the first token sent during it, long before its end (a
            // timestamp taken when the client got to read it would be at
            // least 150 ms late).
            if !((record.sent_mono_ns as i64) < stall_from
                && stall_from < sent_first
                && stall_to - sent_first >= 150 * MS)
            {
                problems.push(format!(
                    "setup: sent {} first token {} stall {}..{} (ms, relative)",
                    0,
                    (sent_first - record.sent_mono_ns as i64) / MS,
                    (stall_from - record.sent_mono_ns as i64) / MS,
                    (stall_to - record.sent_mono_ns as i64) / MS,
                ));
                continue;
            }
            let error = seen_first - sent_first;
            eprintln!(
                "attempt {attempt}: first token error {} µs; read {} ms after it was sent",
                error / 1000,
                (stall_to - sent_first) / MS
            );
            assert!(error > -MS, "seen {error} ns before it was sent");
            if error >= 20 * MS {
                problems.push(format!("first token error {} ms", error / MS));
            }
        }
        if problems.is_empty() {
            return;
        }
        eprintln!("attempt {attempt}: {problems:?}");
        failures.push(problems);
    }
    panic!("not within 20 ms of the truth in 3 attempts: {failures:#?}");
}
