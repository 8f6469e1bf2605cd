//! The measured streaming request's own HTTP/1 connection, driven in the
//! task that reads it.
//!
//! reqwest runs each connection in a task of its own and hands every body
//! chunk to the request's task over a channel, so each chunk costs a
//! cross-task wake-up. Here a worker owns one keep-alive connection made
//! with hyper's connection API (`hyper::client::conn::http1`), and the
//! connection future is polled in the same `poll` as the response or body
//! it feeds: the bytes a read brings are decoded and handed over without the
//! scheduler in between, as oha's fast mode does.
//!
//! Only plain `http://` URLs without credentials in them take this path;
//! https and the rest go through reqwest (`Target::of` says which), as do the
//! model list, the probes and calibration.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use reqwest::header::HeaderValue;
use tokio::net::TcpStream;

use crate::clock::MonoClock;
use crate::rxstamp::{RxStamp, StampedStream};

/// The most a connection's read buffer grows to. hyper's default (about
/// 400 KiB) lets each of a few hundred connections that a fast stream keeps
/// full hold that much: at c=256 with 256-token answers the client's peak
/// RSS was 65 MB with it, 45 MB at 64 KiB and 37 MB at 16 KiB, at the same
/// tokens per second. A response head must fit in it (nginx's default
/// limit for a request head is 8 KiB).
const READ_BUFFER_MAX: usize = 16 * 1024;

/// Where a direct connection goes, and what each request names.
#[derive(Debug)]
pub(crate) struct Target {
    /// `host:port` for the TCP connect (IPv6 in brackets).
    connect: String,
    /// The `Host` header.
    pub(crate) host: HeaderValue,
    /// Origin-form request targets.
    pub(crate) chat_path: hyper::Uri,
    pub(crate) completions_path: hyper::Uri,
}

impl Target {
    /// The direct target of a base URL, or `None` where reqwest must be used
    /// (https, credentials in the URL, anything unusual).
    pub(crate) fn of(base: &str) -> Option<Target> {
        let url = reqwest::Url::parse(base).ok()?;
        if url.scheme() != "http"
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let connect = format!("{host}:{port}");
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let prefix = url.path().trim_end_matches('/');
        Some(Target {
            connect,
            host: HeaderValue::from_str(&host_header).ok()?,
            chat_path: format!("{prefix}/v1/chat/completions").parse().ok()?,
            completions_path: format!("{prefix}/v1/completions").parse().ok()?,
        })
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The TCP connect (or the name lookup) failed.
    Io(std::io::Error),
    /// It took longer than the connect limit.
    Timeout,
    /// The HTTP/1 handshake failed.
    Handshake(hyper::Error),
}

/// One keep-alive HTTP/1 connection; polled only by the task that owns it.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Boxed once per connection so that it can be polled by reference.
    connection: Pin<Box<Connection<TokioIo<StampedStream>, Full<Bytes>>>>,
    /// The kernel's receive time of the connection's latest read.
    stamp: RxStamp,
    /// The connection future ended: closed, or failed.
    closed: bool,
    /// When its last response ended.
    idle_since: Instant,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// A worker's connection, kept between its requests.
#[derive(Debug, Default)]
pub(crate) struct ConnSlot(Option<Conn>);

impl ConnSlot {
    /// The kept connection if it may be reused: still open and not idle for
    /// longer than `max_idle` (servers close idle ones; one written to just
    /// as the server closes it fails).
    pub(crate) fn take(&mut self, max_idle: Duration) -> Option<Conn> {
        let conn = self.0.take()?;
        (!conn.closed && conn.idle_since.elapsed() < max_idle).then_some(conn)
    }

    /// Keeps `conn` for the worker's next request.
    pub(crate) fn put(&mut self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        self.0 = Some(conn);
    }
}

impl Conn {
    /// Connects to `target` within `limit`.
    pub(crate) async fn open(target: &Target, limit: Duration) -> Result<Conn, ConnectError> {
        let stream = match tokio::time::timeout(limit, TcpStream::connect(&target.connect)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(ConnectError::Io(err)),
            Err(_) => return Err(ConnectError::Timeout),
        };
        // Small writes (a request) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let stream = StampedStream::new(stream);
        let stamp = stream.stamp();
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(READ_BUFFER_MAX)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        Ok(Conn {
            sender,
            connection: Box::pin(connection),
            stamp,
            closed: false,
            idle_since: Instant::now(),
        })
    }

    /// When the bytes of the latest read arrived: the kernel's receive time
    /// where it gave one, never later than now nor earlier than `floor` (the
    /// request's send time); now without one. The frames of one read share
    /// its time, so `last` keeps the latest read's answer and the clock is
    /// read once per read, not per frame.
    pub(crate) fn arrival(
        &self,
        clock: &MonoClock,
        floor: Instant,
        last: &mut Option<(u64, Instant)>,
    ) -> Instant {
        match self.stamp.get() {
            Some(ns) => match *last {
                // The same read: its time was at most the clock then.
                Some((seen, at)) if seen == ns => at,
                _ => {
                    let at = clock.instant(ns).min(Instant::now()).max(floor);
                    *last = Some((ns, at));
                    at
                }
            },
            None => Instant::now(),
        }
    }

    /// Whether the connection ended (the server closed it, or it failed).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Lets the connection do its I/O: read what arrived, decode it into the
    /// response or body, write the request.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.closed && self.connection.as_mut().poll(cx).is_ready() {
            // Its outcome reaches the response or the body as their error.
            self.closed = true;
        }
    }

    /// Sends `request` and waits for the response head, driving the
    /// connection meanwhile.
    pub(crate) async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, hyper::Error> {
        std::future::poll_fn(|cx| {
            self.drive(cx);
            self.sender.poll_ready(cx)
        })
        .await?;
        let mut response = std::pin::pin!(self.sender.send_request(request));
        std::future::poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }

    /// The next data of `body` (trailers are skipped), driving the
    /// connection meanwhile; `None` at its end.
    pub(crate) async fn next_data(
        &mut self,
        body: &mut Incoming,
    ) -> Result<Option<Bytes>, hyper::Error> {
        std::future::poll_fn(|cx| {
            loop {
                self.drive(cx);
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => return Poll::Ready(Ok(Some(data))),
                        Err(_trailers) => continue,
                    },
                    Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(err)),
                    Poll::Ready(None) => return Poll::Ready(Ok(None)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }
}
