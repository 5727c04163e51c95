//! AWS-shaped answers for requests hyper refuses before Coffer sees them.
//!
//! hyper's HTTP/1 parser answers a request line longer than 65,534 bytes with a bare `414`, too
//! many or too large headers with a bare `431`, and an unparsable request with a bare `400`: no
//! body, no `x-amzn-ErrorType`, so an SDK reports an unknown error with nothing to go on.
//! [`AwsErrors`] wraps the connection and replaces exactly those automatic answers (an error
//! status without the `x-amzn-requestid` header every answer of Coffer's carries) with the JSON
//! error body and headers every other error has. It makes hyper write each response head in one
//! piece by not offering vectored writes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use coffer_api::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose automatic parse-error answers are rewritten as AWS errors.
pub struct AwsErrors<T> {
    inner: T,
    pending: Vec<u8>,
    written: usize,
}

impl<T> AwsErrors<T> {
    pub fn new(inner: T) -> Self {
        AwsErrors {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The replacement for hyper's automatic answer in `buf`, if `buf` is one.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    if !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.0 4")) || buf.len() < 12 {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if head.contains("x-amzn-requestid") {
        return None;
    }
    let status: u16 = std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()?;
    // Only hyper's own answers: one of the statuses its parser gives, with no body. Coffer's
    // other endpoints (the console, /metrics) answer 4xx with bodies of their own.
    if !matches!(status, 400 | 414 | 431) || !head.contains("content-length: 0") {
        return None;
    }
    let err = match status {
        414 => ApiError::too_large(
            414,
            "The request URI is longer than 65534 bytes: shorten the path and query string.",
        ),
        431 => ApiError::too_large(
            431,
            "The request headers are too large (at most 100 headers and about 400 KB in all): send fewer or smaller headers.",
        ),
        _ => ApiError::new(
            status,
            "BadRequestException",
            "The request could not be parsed as HTTP/1.1: check the request line and headers.",
        ),
    };
    let body = err.body();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-amzn-errortype: {}\r\nx-amzn-requestid: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        err.code(),
        uuid::Uuid::new_v4(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncWrite + Unpin> AwsErrors<T> {
    /// Writes out a pending replacement answer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AwsErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AwsErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if let Some(answer) = replacement(buf) {
            self.pending = answer;
            self.written = 0;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_parse_error_answers_are_replaced_and_coffer_answers_kept() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(replacement(bare).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.contains("x-amzn-errortype: RequestURITooLongException"));
        let (_, body) = out.split_once("\r\n\r\n").unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["__type"], "RequestURITooLongException");
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));

        let ours = b"HTTP/1.1 404 Not Found\r\nx-amzn-requestid: r\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replacement(ours).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        // The console's own refusals keep their status and body.
        let console =
            b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\ncontent-length: 5\r\n\r\nnope.";
        assert!(replacement(console).is_none());
        let console = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\nnope.";
        assert!(replacement(console).is_none());
        assert!(replacement(b"{\"a\":1}").is_none());
    }
}
