//! The simulated engine: admission queue, batch, prefix cache and the timing
//! model that decides when each token is due.
//!
//! A [`Generation`] is polled by the response body (streaming) or by the
//! handler (non-streaming). It waits for a batch slot (`--max-num-seqs`), then
//! for its prefill, then yields tokens at absolute deadlines
//! (`previous deadline + inter-token latency`), so a late timer never makes
//! later tokens drift: every token already due is handed out at once and the
//! body coalesces them into one frame.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::args::Timing;
use crate::metrics::{Gauges, LocalItl, Metrics};

/// Prefix-cache block hashes of a prompt: one per full block, each chained to
/// the previous one so that a block only hits when its whole prefix does.
pub(crate) fn block_hashes(prompt: &[u32], block_size: u32) -> Vec<u64> {
    let block_size = block_size.max(1) as usize;
    let mut hashes = Vec::with_capacity(prompt.len() / block_size);
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for block in prompt.chunks_exact(block_size) {
        for &id in block {
            // FNV-1a over the ids: cheap, and collisions are harmless here.
            hash ^= u64::from(id);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
        hashes.push(hash);
    }
    hashes
}

#[derive(Debug)]
struct PrefixCache {
    blocks: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl PrefixCache {
    /// Counts the leading blocks already cached, then caches all of them
    /// (evicting the oldest blocks first when full).
    fn lookup_and_insert(&mut self, hashes: &[u64]) -> usize {
        let hits = hashes
            .iter()
            .take_while(|h| self.blocks.contains(h))
            .count();
        for &hash in &hashes[hits..] {
            if self.blocks.insert(hash) {
                self.order.push_back(hash);
            }
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.blocks.remove(&old);
            }
        }
        hits
    }
}

/// State shared by all requests.
#[derive(Debug)]
pub(crate) struct Engine {
    timing: Timing,
    block_size: u32,
    admission: Arc<Semaphore>,
    running: AtomicUsize,
    waiting: AtomicUsize,
    kv_tokens: AtomicU64,
    prefix: Option<Mutex<PrefixCache>>,
    pub(crate) metrics: Metrics,
    decode_base_ns: u64,
    decode_per_seq_ns: u64,
    /// Per-request jitter: ±fraction, from `jitter_seed` and a counter.
    jitter_fraction: f64,
    jitter_seed: u64,
    jitter_draws: AtomicU64,
}

impl Engine {
    pub(crate) fn new(timing: Timing, block_size: u32, prefix_cache: bool) -> Engine {
        let block_size = block_size.max(1);
        let prefix = prefix_cache.then(|| {
            Mutex::new(PrefixCache {
                blocks: HashSet::new(),
                order: VecDeque::new(),
                capacity: (timing.kv_cache_tokens / u64::from(block_size)).max(1) as usize,
            })
        });
        Engine {
            admission: Arc::new(Semaphore::new(timing.max_num_seqs as usize)),
            decode_base_ns: timing.decode_base.as_nanos() as u64,
            decode_per_seq_ns: timing.decode_per_seq.as_nanos() as u64,
            timing,
            block_size,
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            kv_tokens: AtomicU64::new(0),
            prefix,
            metrics: Metrics::new(),
            jitter_fraction: 0.0,
            jitter_seed: 0,
            jitter_draws: AtomicU64::new(0),
        }
    }

    /// Scales each request's prefill and decode times by a factor uniform
    /// in ±`fraction`, drawn from `seed` and the request's number.
    pub(crate) fn with_jitter(mut self, seed: u64, fraction: f64) -> Engine {
        self.jitter_seed = seed;
        self.jitter_fraction = fraction;
        self
    }

    /// The next request's jitter factor (1 without jitter).
    fn next_jitter(&self) -> f64 {
        if self.jitter_fraction == 0.0 {
            return 1.0;
        }
        let n = self.jitter_draws.fetch_add(1, Ordering::Relaxed);
        let bits = crate::tokenizer::splitmix64(
            self.jitter_seed ^ 0x0017_7E00_0000_0000 ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        1.0 + crate::args::signed_unit(bits) * self.jitter_fraction
    }

    pub(crate) fn block_size(&self) -> u32 {
        self.block_size
    }

    pub(crate) fn gauges(&self) -> Gauges {
        let kv = self.kv_tokens.load(Ordering::Relaxed) as f64;
        Gauges {
            running: self.running.load(Ordering::Relaxed) as u64,
            waiting: self.waiting.load(Ordering::Relaxed) as u64,
            kv_usage: (kv / self.timing.kv_cache_tokens as f64).min(1.0),
        }
    }

    fn prefill(&self, uncached_tokens: u32) -> Duration {
        let n = f64::from(uncached_tokens);
        let ns = self.timing.prefill_ns_per_token * n + self.timing.prefill_ns_per_token_sq * n * n;
        self.timing.prefill_base + Duration::from_nanos(ns as u64)
    }

    fn inter_token_ns(&self) -> u64 {
        let running = self.running.load(Ordering::Relaxed).max(1) as u64;
        self.decode_base_ns + self.decode_per_seq_ns * (running - 1)
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Done,
}

/// One request's path through the engine; see the module docs.
pub(crate) struct Generation {
    engine: Arc<Engine>,
    phase: Phase,
    acquire: Option<Acquire>,
    permit: Option<OwnedSemaphorePermit>,
    /// Allocated only when a token is not yet due, so zero-delay runs never touch the timer.
    sleep: Option<Pin<Box<Sleep>>>,
    next_deadline: Instant,
    produced: u32,
    limit: u32,
    prompt_tokens: u32,
    block_hashes: Vec<u64>,
    cached_tokens: u32,
    arrival: Instant,
    kv_held: u64,
    itl: LocalItl,
    /// This request's jitter factor on prefill and every gap.
    jitter: f64,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("phase", &self.phase)
            .field("produced", &self.produced)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Generation {
    /// Queues a request that will produce `limit` tokens.
    pub(crate) fn new(
        engine: Arc<Engine>,
        prompt_tokens: u32,
        block_hashes: Vec<u64>,
        limit: u32,
    ) -> Generation {
        engine.waiting.fetch_add(1, Ordering::Relaxed);
        let jitter = engine.next_jitter();
        let now = Instant::now();
        Generation {
            engine,
            phase: Phase::Queued,
            acquire: None,
            permit: None,
            sleep: None,
            next_deadline: now,
            produced: 0,
            limit,
            prompt_tokens,
            block_hashes,
            cached_tokens: 0,
            arrival: now,
            kv_held: 0,
            itl: LocalItl::new(),
            jitter,
        }
    }

    /// Prompt tokens served from the prefix cache (known once admitted).
    pub(crate) fn cached_tokens(&self) -> u32 {
        self.cached_tokens
    }

    fn admit(&mut self, permit: OwnedSemaphorePermit) {
        let engine = Arc::clone(&self.engine);
        engine.waiting.fetch_sub(1, Ordering::Relaxed);
        engine.running.fetch_add(1, Ordering::Relaxed);
        self.permit = Some(permit);
        self.phase = Phase::Running;
        let block_size = engine.block_size;
        let hit_blocks = match &engine.prefix {
            Some(cache) => cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .lookup_and_insert(&self.block_hashes),
            None => 0,
        };
        // Like vLLM, the last prompt token is always computed, even on a full hit.
        let cached = (hit_blocks as u64 * u64::from(block_size))
            .min(u64::from(self.prompt_tokens.saturating_sub(1))) as u32;
        self.cached_tokens = cached;
        let metrics = &engine.metrics;
        metrics
            .prefix_queries
            .fetch_add(u64::from(self.prompt_tokens), Ordering::Relaxed);
        metrics
            .prefix_hits
            .fetch_add(u64::from(cached), Ordering::Relaxed);
        metrics
            .prompt_tokens
            .fetch_add(u64::from(self.prompt_tokens), Ordering::Relaxed);
        self.kv_held = u64::from(self.prompt_tokens);
        engine.kv_tokens.fetch_add(self.kv_held, Ordering::Relaxed);
        self.next_deadline = Instant::now()
            + engine
                .prefill(self.prompt_tokens - cached)
                .mul_f64(self.jitter);
    }

    /// The gap to the next token at the current batch size, with this
    /// request's jitter.
    fn jittered_gap(&self) -> u64 {
        let gap = self.engine.inter_token_ns();
        if self.jitter == 1.0 {
            gap
        } else {
            (gap as f64 * self.jitter) as u64
        }
    }

    fn finish(&mut self) {
        if self.phase == Phase::Running {
            self.engine.running.fetch_sub(1, Ordering::Relaxed);
            self.engine
                .kv_tokens
                .fetch_sub(self.kv_held, Ordering::Relaxed);
            self.engine.metrics.merge_itl(&self.itl);
            self.permit = None;
        }
        self.phase = Phase::Done;
    }

    /// Waits until at least one token is due and returns how many are due now
    /// (at most `max_batch`); `0` once all `limit` tokens were produced.
    pub(crate) fn poll_tokens(&mut self, cx: &mut Context<'_>, max_batch: u32) -> Poll<u32> {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(0),
                Phase::Queued => {
                    if self.acquire.is_none() {
                        match Arc::clone(&self.engine.admission).try_acquire_owned() {
                            Ok(permit) => {
                                self.admit(permit);
                                continue;
                            }
                            Err(_) => {
                                self.acquire = Some(Box::pin(
                                    Arc::clone(&self.engine.admission).acquire_owned(),
                                ));
                            }
                        }
                    }
                    let Some(acquire) = self.acquire.as_mut() else {
                        continue;
                    };
                    match ready!(acquire.as_mut().poll(cx)) {
                        Ok(permit) => {
                            self.acquire = None;
                            self.admit(permit);
                        }
                        // The semaphore is never closed; treat it as an empty response.
                        Err(_) => {
                            self.engine.waiting.fetch_sub(1, Ordering::Relaxed);
                            self.phase = Phase::Done;
                        }
                    }
                }
                Phase::Running => {
                    if self.produced >= self.limit {
                        self.finish();
                        return Poll::Ready(0);
                    }
                    let now = Instant::now();
                    if self.next_deadline > now {
                        let deadline = self.next_deadline;
                        let sleep = self
                            .sleep
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                        sleep.as_mut().reset(deadline);
                        ready!(sleep.as_mut().poll(cx));
                        continue;
                    }
                    return Poll::Ready(self.take_due(now, max_batch));
                }
            }
        }
    }

    fn take_due(&mut self, now: Instant, max_batch: u32) -> u32 {
        let mut n = 0;
        loop {
            if self.produced == 0 {
                let ttft = self.next_deadline.saturating_duration_since(self.arrival);
                self.engine.metrics.observe_ttft(ttft.as_secs_f64());
            }
            self.produced += 1;
            n += 1;
            if self.produced >= self.limit || n >= max_batch.max(1) {
                break;
            }
            let gap = self.jittered_gap();
            self.itl.observe_ns(gap);
            self.next_deadline += Duration::from_nanos(gap);
            if self.next_deadline > now {
                break;
            }
        }
        if self.produced < self.limit && n >= max_batch.max(1) {
            let gap = self.jittered_gap();
            self.itl.observe_ns(gap);
            self.next_deadline += Duration::from_nanos(gap);
        }
        self.kv_held += u64::from(n);
        self.engine
            .kv_tokens
            .fetch_add(u64::from(n), Ordering::Relaxed);
        self.engine
            .metrics
            .generation_tokens
            .fetch_add(u64::from(n), Ordering::Relaxed);
        if self.produced >= self.limit {
            self.finish();
        }
        n
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        match self.phase {
            Phase::Queued => {
                self.engine.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            Phase::Running => self.finish(),
            Phase::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_blocks_chain() {
        let a: Vec<u32> = (0..40).collect();
        let mut b = a.clone();
        b[20] = 999;
        let ha = block_hashes(&a, 16);
        let hb = block_hashes(&b, 16);
        assert_eq!(ha.len(), 2);
        assert_eq!(ha[0], hb[0]);
        assert_ne!(ha[1], hb[1]);
    }

    #[test]
    fn cache_counts_leading_hits_and_evicts() {
        let mut cache = PrefixCache {
            blocks: HashSet::new(),
            order: VecDeque::new(),
            capacity: 3,
        };
        assert_eq!(cache.lookup_and_insert(&[1, 2]), 0);
        assert_eq!(cache.lookup_and_insert(&[1, 2, 3]), 2);
        assert_eq!(cache.lookup_and_insert(&[4, 5]), 0);
        // 1 and 2 were evicted to make room.
        assert_eq!(cache.lookup_and_insert(&[1]), 0);
    }
}
