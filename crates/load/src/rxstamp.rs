//! The kernel's receive time of each read on a direct connection.
//!
//! On Linux the socket gets `SO_TIMESTAMPNS` and every read is a `recvmsg`
//! whose control message carries the kernel's receive time (CLOCK_REALTIME)
//! of the data read; it is converted to CLOCK_MONOTONIC with an offset
//! measured when the connection opens and kept in an atomic that the request
//! reads when a body frame is handed over. For TCP the kernel keeps one time
//! per queued buffer, and segments that arrive while the reader is behind
//! are merged into the queued buffer with the *later* time: the time is that
//! of the latest segment of the read, an upper bound of when its first byte
//! arrived. Elsewhere, when the option cannot be set, or when a read brings
//! no time, the stamp is 0 and the request falls back to `Instant::now()`.
#![allow(unsafe_code)]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The monotonic ns of the latest read's kernel receive time; 0 = unknown.
#[derive(Debug, Clone, Default)]
pub(crate) struct RxStamp(Arc<AtomicU64>);

impl RxStamp {
    /// CLOCK_MONOTONIC ns of the latest read, if the kernel gave it.
    pub(crate) fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ns),
        }
    }

    fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::Relaxed);
    }
}

/// A `TcpStream` whose reads keep their kernel receive time in an `RxStamp`.
#[derive(Debug)]
pub(crate) struct StampedStream {
    inner: TcpStream,
    stamp: RxStamp,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, ns; `None`: plain reads.
    offset: Option<i128>,
}

impl StampedStream {
    pub(crate) fn new(inner: TcpStream) -> StampedStream {
        let offset = enable(&inner).then(realtime_offset);
        StampedStream {
            inner,
            stamp: RxStamp::default(),
            offset,
        }
    }

    pub(crate) fn stamp(&self) -> RxStamp {
        self.stamp.clone()
    }
}

#[cfg(target_os = "linux")]
fn enable(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn enable(_stream: &TcpStream) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write to.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC, from the tightest of a few brackets.
#[cfg(target_os = "linux")]
fn realtime_offset() -> i128 {
    let mut best = (i128::MAX, 0);
    for _ in 0..16 {
        let before = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let after = clock_ns(libc::CLOCK_MONOTONIC);
        let width = after - before;
        if width < best.0 {
            best = (width, real - (before + width / 2));
        }
    }
    best.1
}

#[cfg(not(target_os = "linux"))]
fn realtime_offset() -> i128 {
    0
}

/// One `recvmsg` into `buf`; the bytes read and the receive time
/// (CLOCK_REALTIME ns) if the kernel sent it.
#[cfg(target_os = "linux")]
fn recv_stamped(
    stream: &TcpStream,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, Option<i128>)> {
    use std::os::fd::AsRawFd;
    // Room for a cmsghdr and a timespec (CMSG_SPACE(16) = 32 on 64-bit).
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr is a valid value; the pointers set below outlive
    // the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd valid; iov points to `buf.len()` writable bytes.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: msg was filled by recvmsg; the CMSG macros walk its control
    // buffer within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for StampedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(target_os = "linux")]
        if let Some(offset) = this.offset {
            loop {
                std::task::ready!(this.inner.poll_read_ready(cx))?;
                // SAFETY: recvmsg only writes the bytes it reports read,
                // which are then marked initialised.
                let unfilled = unsafe { buf.unfilled_mut() };
                let inner = &this.inner;
                match inner.try_io(tokio::io::Interest::READABLE, || {
                    recv_stamped(inner, unfilled)
                }) {
                    Ok((n, stamp)) => {
                        // SAFETY: the kernel wrote `n` bytes.
                        unsafe { buf.assume_init(n) };
                        buf.advance(n);
                        let mono = stamp.map_or(0, |real| (real - offset).max(1) as u64);
                        this.stamp.set(mono);
                        return Poll::Ready(Ok(()));
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
        }
        let _ = this.offset;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
