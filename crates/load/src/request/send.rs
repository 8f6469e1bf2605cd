//! Sending one request and reading what is not the stream: the request on
//! reqwest or on the worker's own connection (`crate::direct`), the response
//! head, an error body and the rest of a body after `[DONE]`, and the
//! classification of send and body errors into failure classes. The stream
//! itself is read in `request.rs`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use spark_results::{Failure, FailureClass, TimeoutPhase};

use tokio_util::sync::CancellationToken;

use super::{MAX_ERROR_BODY, RequestSpec, StreamState, failure, timeout};
use crate::clock::MonoClock;
use crate::direct::{Conn, ConnSlot, ConnectError, Target};
use crate::engine::{Engine, error_chain};

/// When a request was sent and its deadlines.
#[derive(Clone, Copy)]
pub(super) struct Sent {
    pub(super) at: Instant,
    pub(super) total_deadline: Instant,
    pub(super) first_token_deadline: Instant,
}

impl Sent {
    pub(super) fn now(timeouts: &crate::engine::Timeouts) -> Sent {
        let at = Instant::now();
        Sent {
            at,
            total_deadline: at + timeouts.total,
            first_token_deadline: at + timeouts.first_token.min(timeouts.total),
        }
    }

    /// When the timer should next look, before the first token: the
    /// first-token deadline, but at most `between_tokens` after `now`. So the
    /// re-arm at the first token (to the between-token deadline) only ever
    /// moves the timer later, which tokio does without a lock or a wake-up
    /// of its driver; moving a timer earlier than the driver's next wake-up
    /// costs an eventfd write, once per request.
    pub(super) fn next_look(&self, timeouts: &crate::engine::Timeouts, now: Instant) -> Instant {
        self.first_token_deadline.min(now + timeouts.between_tokens)
    }

    /// The failure of a request whose response head did not come in time.
    pub(super) fn head_timeout(&self, timeouts: &crate::engine::Timeouts) -> Failure {
        if Instant::now() >= self.total_deadline {
            timeout(TimeoutPhase::Total, timeouts.total)
        } else {
            timeout(TimeoutPhase::FirstToken, timeouts.first_token)
        }
    }
}

/// A response being read: reqwest's, or one on the worker's own connection.
pub(super) enum Response<'c> {
    Reqwest(reqwest::Response),
    Direct {
        head: hyper::http::response::Parts,
        body: Incoming,
        conn: &'c mut Conn,
    },
}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Response<'_> {
    pub(super) fn status(&self) -> reqwest::StatusCode {
        match self {
            Response::Reqwest(response) => response.status(),
            Response::Direct { head, .. } => head.status,
        }
    }

    pub(super) fn headers(&self) -> &reqwest::header::HeaderMap {
        match self {
            Response::Reqwest(response) => response.headers(),
            Response::Direct { head, .. } => &head.headers,
        }
    }

    /// When the bytes just handed over arrived: on a direct connection the
    /// kernel's receive time of the read that brought them (never later
    /// than now, never before `sent`; `last` is the latest read's, see
    /// `Conn::arrival`), else now.
    pub(super) fn arrival(
        &self,
        clock: &MonoClock,
        sent: Instant,
        last: &mut Option<(u64, Instant)>,
    ) -> Instant {
        match self {
            Response::Reqwest(_) => Instant::now(),
            Response::Direct { conn, .. } => conn.arrival(clock, sent, last),
        }
    }

    /// The next piece of the body; `None` at its end.
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, BoxError> {
        match self {
            Response::Reqwest(response) => response.chunk().await.map_err(Into::into),
            Response::Direct { body, conn, .. } => conn.next_data(body).await.map_err(Into::into),
        }
    }
}

/// Reads at most `MAX_ERROR_BODY` of a response that is not a stream,
/// bounded in time; says whether the body was read to its end.
pub(super) async fn read_body(response: &mut Response<'_>, deadline: Instant) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let mut ended = false;
    let read = async {
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    body.extend_from_slice(&bytes);
                    if body.len() >= MAX_ERROR_BODY {
                        break;
                    }
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(_) => break,
            }
        }
    };
    let deadline = deadline.min(Instant::now() + Duration::from_secs(10));
    let _ = tokio::time::timeout_at(deadline.into(), read).await;
    (body, ended)
}

/// Sends `spec` through reqwest and waits for the response head, within the
/// first-token and total deadlines.
pub(super) async fn send_reqwest(
    engine: &Engine,
    spec: &RequestSpec,
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    cancel: &CancellationToken,
) -> (Sent, Result<reqwest::Response, Failure>) {
    let timeouts = engine.inner.timeouts;
    let mut retried = false;
    loop {
        let request = engine
            .post(engine.url(spec.url_endpoint), spec.body.clone())
            .header("x-request-id", spec.request_id.as_str());
        let sent = Sent::now(&timeouts);
        timer
            .as_mut()
            .reset(sent.next_look(&timeouts, sent.at).into());
        let mut send = std::pin::pin!(request.send());
        let result = loop {
            tokio::select! {
                biased;
                // `Ok(None)`: sent again, see below.
                result = &mut send => break match result {
                    Ok(response) => Ok(Some(response)),
                    // A pooled connection the server had closed without saying
                    // so (llama-server closes the connection after every
                    // streamed response yet answers `keep-alive`): the request
                    // never reached it. Once, on a fresh connection, timed anew.
                    Err(err) if !retried && closed_before_response(&err) => Ok(None),
                    Err(err) => Err(classify_send_error(&err, timeouts.connect)),
                },
                () = &mut timer => {
                    let now = Instant::now();
                    if now < sent.first_token_deadline {
                        timer.as_mut().reset(sent.next_look(&timeouts, now).into());
                        continue;
                    }
                    break Err(sent.head_timeout(&timeouts));
                }
                () = cancel.cancelled() => break Err(failure(FailureClass::Cancelled, "cancelled before the response".to_owned())),
            }
        };
        match result {
            Ok(None) => {
                retried = true;
                continue;
            }
            Ok(Some(response)) => return (sent, Ok(response)),
            Err(failure) => return (sent, Err(failure)),
        }
    }
}

/// Why a request on a direct connection got no response head.
pub(super) enum DirectError {
    Connect(ConnectError),
    /// The request failed on the connection; `reused`: it was a kept one.
    Send {
        err: hyper::Error,
        reused: bool,
    },
}

/// Sends `spec` on the worker's connection (a kept one, else a new one) and
/// waits for the response head, within the first-token and total deadlines;
/// gives back the connection with the response.
pub(super) async fn send_direct(
    engine: &Engine,
    target: &Target,
    spec: &RequestSpec,
    slot: &mut ConnSlot,
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    cancel: &CancellationToken,
) -> (Sent, Result<(Conn, hyper::Response<Incoming>), Failure>) {
    let timeouts = engine.inner.timeouts;
    let mut kept = slot.take(crate::engine::POOL_IDLE);
    loop {
        let path = match spec.url_endpoint {
            spark_results::Endpoint::Chat => target.chat_path.clone(),
            spark_results::Endpoint::Completions => target.completions_path.clone(),
        };
        let mut request = hyper::Request::new(Full::new(spec.body.clone()));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = path;
        let headers = request.headers_mut();
        headers.insert(reqwest::header::HOST, target.host.clone());
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        if let Ok(id) = reqwest::header::HeaderValue::from_str(&spec.request_id) {
            headers.insert("x-request-id", id);
        }
        if let Some(auth) = &engine.inner.auth {
            headers.insert(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let reused_conn = kept.take();
        let reused = reused_conn.is_some();
        let attempt = async move {
            let mut conn = match reused_conn {
                Some(conn) => conn,
                None => Conn::open(target, timeouts.connect)
                    .await
                    .map_err(DirectError::Connect)?,
            };
            match conn.send(request).await {
                Ok(response) => Ok((conn, response)),
                Err(err) => Err(DirectError::Send { err, reused }),
            }
        };
        let sent = Sent::now(&timeouts);
        timer
            .as_mut()
            .reset(sent.next_look(&timeouts, sent.at).into());
        let mut attempt = std::pin::pin!(attempt);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut attempt => break result,
                () = &mut timer => {
                    let now = Instant::now();
                    if now < sent.first_token_deadline {
                        timer.as_mut().reset(sent.next_look(&timeouts, now).into());
                        continue;
                    }
                    return (sent, Err(sent.head_timeout(&timeouts)));
                }
                () = cancel.cancelled() => return (sent, Err(failure(FailureClass::Cancelled, "cancelled before the response".to_owned()))),
            }
        };
        let result = match result {
            Ok(head) => Ok(head),
            // A kept connection the server had closed without saying so:
            // the request never reached it. Once, on a fresh connection,
            // timed anew (as `send_reqwest` does for reqwest's pool).
            Err(DirectError::Send { err, reused: true }) if stale(&err) => continue,
            Err(DirectError::Send { err, .. }) => Err(classify_direct_send_error(&err)),
            Err(DirectError::Connect(ConnectError::Timeout)) => {
                Err(timeout(TimeoutPhase::Connect, timeouts.connect))
            }
            Err(DirectError::Connect(ConnectError::Io(err))) => Err(failure(
                FailureClass::Connect,
                format!(
                    "error connecting to {}: {}",
                    engine.inner.base,
                    error_chain(&err)
                ),
            )),
            Err(DirectError::Connect(ConnectError::Handshake(err))) => Err(failure(
                FailureClass::Connect,
                format!(
                    "error connecting to {}: {}",
                    engine.inner.base,
                    error_chain(&err)
                ),
            )),
        };
        return (sent, result);
    }
}

/// Whether a request on a kept connection failed because the server had
/// closed it: nothing of a response came.
pub(super) fn stale(err: &hyper::Error) -> bool {
    use std::io::ErrorKind::*;
    err.is_incomplete_message()
        || err.is_canceled()
        || err.is_closed()
        || has_io_kind(err, &[ConnectionReset, ConnectionAborted, BrokenPipe])
}

/// A failure on a direct connection before the response head.
pub(super) fn classify_direct_send_error(err: &hyper::Error) -> Failure {
    let message = error_chain(err);
    if has_io_kind(err, &[std::io::ErrorKind::ConnectionRefused]) {
        return failure(FailureClass::Connect, message);
    }
    // The connection broke (or closed) before the response head.
    failure(FailureClass::Reset, message)
}

/// A failure before the response head arrived.
pub(super) fn classify_send_error(err: &reqwest::Error, connect_limit: Duration) -> Failure {
    let message = error_chain(err);
    if err.is_connect() {
        if err.is_timeout() {
            return timeout(TimeoutPhase::Connect, connect_limit);
        }
        return failure(FailureClass::Connect, message);
    }
    if has_io_kind(err, &[std::io::ErrorKind::ConnectionRefused]) {
        return failure(FailureClass::Connect, message);
    }
    // The connection broke (or closed) before the response head.
    failure(FailureClass::Reset, message)
}

/// A failure while reading the body.
pub(super) fn classify_body_error(
    err: &(dyn std::error::Error + 'static),
    state: &StreamState,
) -> Failure {
    let message = error_chain(err);
    use std::io::ErrorKind::*;
    if has_io_kind(err, &[ConnectionReset, ConnectionAborted, BrokenPipe]) {
        return failure(FailureClass::Reset, message);
    }
    // The peer closed the connection mid-body (hyper: "incomplete message").
    failure(
        FailureClass::Truncated,
        format!(
            "the stream broke after {} token chunks: {message}",
            state.token_chunks
        ),
    )
}

/// Whether a send failed because the connection closed before any byte of
/// the response came: hyper's "connection closed before message completed"
/// on a connection the server had already given up (a stale keep-alive).
pub(crate) fn closed_before_response(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(inner) = source {
        if let Some(hyper) = inner.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message();
        }
        source = inner.source();
    }
    false
}

pub(super) fn has_io_kind(
    err: &(dyn std::error::Error + 'static),
    kinds: &[std::io::ErrorKind],
) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && kinds.contains(&io.kind())
        {
            return true;
        }
        source = inner.source();
    }
    false
}

/// How long the body may linger after `[DONE]` before the connection is
/// given up (the measurement is complete at `[DONE]`).
const LINGER_AFTER_DONE: Duration = Duration::from_millis(200);

/// After `[DONE]`: reads the rest of the body (ignored) to its end so that
/// the connection can be reused, for at most [`LINGER_AFTER_DONE`]; says
/// whether it ended. The end usually came with `[DONE]`, so it is looked
/// for first without a timer: arming one earlier than the runtime's next
/// timer wakes the runtime's driver, a syscall per request.
pub(super) async fn drain_after_done(
    response: &mut Response<'_>,
    cancel: &CancellationToken,
) -> bool {
    for _ in 0..4 {
        match poll_once(response.chunk()).await {
            Some(Ok(Some(_))) => {}
            Some(Ok(None)) => return true,
            Some(Err(_)) => return false,
            None => break,
        }
    }
    let drain = async {
        loop {
            match response.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    };
    tokio::select! {
        ended = drain => ended,
        () = tokio::time::sleep(LINGER_AFTER_DONE) => false,
        () = cancel.cancelled() => false,
    }
}

/// `future`'s output if it is ready at its first poll.
async fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}
