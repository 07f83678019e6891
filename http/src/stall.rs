//! A client that sends requests but never reads the answers would hold its connection
//! (and one of the `--max-connections` slots) forever: the server's writes wait on a full
//! socket buffer, and no header or body timer runs while a response is being written.
//! [`WriteStallLimit`] fails a write, and so drops the connection, once it has made no
//! progress for the limit.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, whose writes fail with `TimedOut` after `limit` without progress.
#[derive(Debug)]
pub struct WriteStallLimit<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write is pending.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStallLimit<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
        }
    }

    /// Pass a ready result through (disarming the timer); a pending one fails once the
    /// timer, armed at the first pending poll of this stall, has run out.
    fn watch<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.timer = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took no response bytes for {} s",
                    limit.as_secs_f64()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStallLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStallLimit<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn a_write_without_progress_fails_after_the_limit() {
        // A peer that reads nothing: the 64-byte pipe fills, and the next write waits.
        let (a, _b) = tokio::io::duplex(64);
        let mut w = WriteStallLimit::new(a, Duration::from_millis(300));
        w.write_all(&[0; 64]).await.expect("fits the buffer");
        let t = std::time::Instant::now();
        let e = w.write_all(&[0; 1]).await.expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn progress_rearms_the_timer() {
        use tokio::io::AsyncReadExt as _;
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = WriteStallLimit::new(a, Duration::from_secs(2));
        let reader = tokio::spawn(async move {
            // Takes 64 bytes every 0.7 s: 2.8 s in all, longer than the limit, but
            // never 2 s without progress.
            let mut buf = [0; 64];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                b.read_exact(&mut buf).await.expect("read");
            }
            b
        });
        w.write_all(&[0; 256]).await.expect("slow but steady");
        drop(reader.await.expect("reader"));
    }
}
