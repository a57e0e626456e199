//! The socket under hyper, wrapped to (1) tell the connection's phase when
//! bytes arrive, (2) close a connection whose writes stall (the client
//! stopped reading), and (3) give hyper's own error responses the OpenAI
//! body.
//!
//! (3): hyper answers unparsable heads (400), heads over its buffer (431)
//! and over-long URIs (414) itself, with an empty body, before any route
//! runs. Those are the only bytes hyper writes while no routed response is
//! under way ([`super::connection::Phase::is_idle`]), so here they are
//! caught, and replaced by the same status with the OpenAI error body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep, Sleep};

use super::phase::Conn;
use super::Limits;
use crate::server::error::ApiError;

/// A whole HTTP/1.1 response carrying `err`'s OpenAI body; the connection
/// closes after it.
pub fn error_response(err: &ApiError, retry_after_secs: Option<u64>) -> Vec<u8> {
    let status = err.status();
    let body = err.to_json();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(secs) = retry_after_secs {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Answers a connection that is not served (the cap is reached) with
/// `response`, then reads what the client sent until it closes (bounded),
/// so that closing does not reset the connection before the client has
/// read the answer.
pub async fn refuse(mut stream: TcpStream, response: Vec<u8>) {
    const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// hyper's status line for an automatic error response, and ours.
fn replacement(head: &[u8]) -> Option<ApiError> {
    let code = head.get(9..12)?;
    let status = StatusCode::from_bytes(code).ok()?;
    Some(match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge,
        StatusCode::URI_TOO_LONG => ApiError::UriTooLong,
        StatusCode::BAD_REQUEST => ApiError::InvalidRequest {
            message: "the HTTP request could not be parsed".into(),
            param: None,
        },
        _ => return None,
    })
}

/// Rewriting of an automatic response, see the module docs.
enum Rewrite {
    /// Passing writes through.
    Off,
    /// Collecting hyper's automatic response until its head is complete.
    Capturing(Vec<u8>),
    /// Sending these bytes (ours, or hyper's unchanged) from `pos`.
    Sending { bytes: Vec<u8>, pos: usize },
}

/// The connection's socket (`T` is a [`TcpStream`] outside tests).
pub struct ConnIo<T = TcpStream> {
    inner: T,
    conn: Arc<Conn>,
    limits: Arc<Limits>,
    /// Runs while a write is blocked; when it fires, the write fails.
    stall: Option<Pin<Box<Sleep>>>,
    rewrite: Rewrite,
}

impl<T: AsyncRead + AsyncWrite + Unpin> ConnIo<T> {
    pub fn new(inner: T, conn: Arc<Conn>, limits: Arc<Limits>) -> Self {
        Self {
            inner,
            conn,
            limits,
            stall: None,
            rewrite: Rewrite::Off,
        }
    }

    /// Maps a write's `Pending` to an error once it has lasted the send timeout.
    fn stalled<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let send = self.limits.send;
        let timer = self.stall.get_or_insert_with(|| Box::pin(sleep(send)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stall = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading the response",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes the pending replacement bytes out.
    fn poll_send_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Rewrite::Sending { bytes, pos } = &self.rewrite {
            if *pos >= bytes.len() {
                self.rewrite = Rewrite::Off;
                break;
            }
            let r = Pin::new(&mut self.inner).poll_write(cx, &bytes[*pos..]);
            let n = ready!(self.stalled(cx, r))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Rewrite::Sending { pos, .. } = &mut self.rewrite {
                *pos += n;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` into the capture when hyper writes outside a routed
    /// response; `None`: pass it through.
    fn capture(&mut self, buf: &[u8]) -> Option<usize> {
        match &mut self.rewrite {
            Rewrite::Off if self.conn.phase().is_idle() => {
                self.rewrite = Rewrite::Capturing(Vec::new());
            }
            Rewrite::Off => return None,
            _ => {}
        }
        match &mut self.rewrite {
            Rewrite::Capturing(head) => {
                head.extend_from_slice(buf);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let head = std::mem::take(head);
                    let bytes = match replacement(&head) {
                        Some(err) => error_response(&err, None),
                        None => head,
                    };
                    self.rewrite = Rewrite::Sending { bytes, pos: 0 };
                }
            }
            Rewrite::Sending { bytes, .. } => bytes.extend_from_slice(buf),
            Rewrite::Off => return None,
        }
        Some(buf.len())
    }

    /// Before a flush or shutdown: whatever was captured goes out.
    fn finish_capture(&mut self) {
        if let Rewrite::Capturing(head) = &mut self.rewrite {
            let bytes = std::mem::take(head);
            self.rewrite = Rewrite::Sending { bytes, pos: 0 };
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.saw_bytes();
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.capture(buf) {
            return Poll::Ready(Ok(n));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stalled(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.rewrite, Rewrite::Off) || this.conn.phase().is_idle() {
            let flat: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if let Some(n) = this.capture(&flat) {
                return Poll::Ready(Ok(n));
            }
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stalled(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.finish_capture();
        ready!(this.poll_send_rewrite(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.conn.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.finish_capture();
        ready!(this.poll_send_rewrite(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wrapped(
        conn: &Arc<Conn>,
        capacity: usize,
    ) -> (ConnIo<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(capacity);
        let limits = Limits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            send: Duration::from_millis(100),
            max_connections: 1,
            retry_after_secs: 1,
        };
        (ConnIo::new(server, conn.clone(), Arc::new(limits)), client)
    }

    async fn written(
        io: &mut ConnIo<tokio::io::DuplexStream>,
        client: &mut tokio::io::DuplexStream,
        bytes: &[u8],
    ) -> String {
        io.write_all(bytes).await.unwrap();
        io.shutdown().await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn an_automatic_response_gets_the_openai_body_and_a_routed_one_is_untouched() {
        let conn = Conn::new();
        let (mut io, mut client) = wrapped(&conn, 1 << 16);
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let out = written(&mut io, &mut client, hyper_431).await;
        assert_eq!(
            out.as_bytes(),
            error_response(&ApiError::HeadersTooLarge, None).as_slice()
        );

        let conn = Conn::new();
        let (mut io, mut client) = wrapped(&conn, 1 << 16);
        let _request = conn.begin_request();
        let routed = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        let out = written(&mut io, &mut client, routed).await;
        assert_eq!(out.as_bytes(), routed);
    }

    #[tokio::test]
    async fn a_write_the_client_does_not_read_fails_after_the_send_timeout() {
        let conn = Conn::new();
        let (mut io, _client) = wrapped(&conn, 64);
        let _request = conn.begin_request();
        let r = tokio::time::timeout(Duration::from_secs(10), io.write_all(&[b'x'; 4096])).await;
        let err = r.expect("the write gives up by itself").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn hyper_rejections_map_to_openai_errors() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let err = replacement(head).unwrap();
        let bytes = String::from_utf8(error_response(&err, None)).unwrap();
        let (head, body) = bytes.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_header_fields_too_large");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(
            replacement(b"HTTP/1.1 400 Bad Request\r\n\r\n").map(|e| e.status()),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            replacement(b"HTTP/1.1 414 URI Too Long\r\n\r\n").map(|e| e.status()),
            Some(StatusCode::URI_TOO_LONG)
        );
        assert!(replacement(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
    }

    #[test]
    fn the_cap_answer_has_retry_after() {
        let err = ApiError::Unavailable("full".into());
        let bytes = String::from_utf8(error_response(&err, Some(3))).unwrap();
        assert!(
            bytes.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{bytes}"
        );
        assert!(bytes.contains("\r\nretry-after: 3\r\n"), "{bytes}");
        assert!(bytes.contains("\r\nconnection: close\r\n"), "{bytes}");
        assert!(
            bytes.ends_with(r#""code":"service_unavailable"}}"#),
            "{bytes}"
        );
    }
}
