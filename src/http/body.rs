//! Request and response bodies at the edge: reading a request body under a size limit and a deadline, and
//! keeping what a response holds (an in-flight slot, a drain count) and bounds it (the request deadline) for as
//! long as its body is being sent — an SSE stream's headers go out long before its answer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    #[error("request body not received within {} ms", .0.as_millis())]
    TooSlow(Duration),
    #[error("request body could not be read: {0}")]
    Failed(String),
}

/// Reads a whole body of at most `limit` bytes within `timeout`.
///
/// # Errors
/// [`ReadError`]: too large, too slow, or the connection failed.
pub async fn read(body: Body, limit: u64, timeout: Duration) -> Result<Bytes, ReadError> {
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(ReadError::TooSlow(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ReadError::TooLarge(limit))
        }
        Ok(Err(e)) => Err(ReadError::Failed(e.to_string())),
    }
}

/// A future that resolves when a response's time is up.
pub type Expiry = Pin<Box<dyn Future<Output = ()> + Send>>;
/// What happens when a response's time is up: returns the last bytes to send (say, an SSE event with the error).
pub type OnExpiry = Box<dyn FnOnce() -> Option<Bytes> + Send>;

/// Keeps `held` until `response`'s body has been sent (or dropped, when the client goes away).
pub fn hold<T: Send + 'static>(response: Response, held: T) -> Response {
    response.map(|inner| {
        Body::new(Bounded {
            inner,
            held: Some(Box::new(held)),
            expiry: None,
        })
    })
}

/// Like [`hold`], and ends the body when `expiry` resolves first: `on_expiry` runs and its bytes, if any, are the
/// last sent (only on bodies of unknown length, such as SSE streams).
pub fn bound<T: Send + 'static>(
    response: Response,
    held: T,
    expiry: Expiry,
    on_expiry: OnExpiry,
) -> Response {
    response.map(|inner| {
        Body::new(Bounded {
            inner,
            held: Some(Box::new(held)),
            expiry: Some((expiry, on_expiry)),
        })
    })
}

/// A response body that releases `held` when it ends, and ends at its expiry.
struct Bounded {
    inner: Body,
    /// Dropped at the end of the body; `None` once ended.
    held: Option<Box<dyn Send>>,
    expiry: Option<(Expiry, OnExpiry)>,
}

impl Bounded {
    fn end(&mut self) {
        self.held = None;
        self.expiry = None;
    }
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.held.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.end();
                return Poll::Ready(None);
            }
            Poll::Ready(Some(frame)) => {
                if frame.is_err() {
                    this.end();
                }
                return Poll::Ready(Some(frame));
            }
            Poll::Pending => {}
        }
        let Some((expiry, _)) = this.expiry.as_mut() else {
            return Poll::Pending;
        };
        if expiry.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let open_ended = this.inner.size_hint().exact().is_none();
        let last = this
            .expiry
            .take()
            .and_then(|(_, on_expiry)| on_expiry())
            .filter(|_| open_ended);
        // Dropping the inner body ends the stream it reads (rmcp's SSE stream for this request).
        this.inner = Body::empty();
        this.end();
        Poll::Ready(last.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.held.is_none() {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    fn chunks(parts: Vec<&'static [u8]>, pause: Duration) -> Body {
        let stream = futures::stream::iter(parts).then(move |p| async move {
            tokio::time::sleep(pause).await;
            Ok::<_, std::io::Error>(Bytes::from_static(p))
        });
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_is_read_whole_within_its_limits() {
        let body = chunks(vec![b"ab", b"cd"], Duration::from_millis(10));
        let bytes = read(body, 4, Duration::from_secs(1)).await.unwrap();
        assert_eq!(&bytes[..], b"abcd");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_fails_at_the_deadline_even_while_bytes_arrive() {
        let body = chunks(vec![b"a"; 100], Duration::from_millis(100));
        let started = tokio::time::Instant::now();
        let e = read(body, 1000, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, ReadError::TooSlow(_)), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    /// A drop guard that records when it was released.
    struct Held(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn held() -> (Held, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        (Held(released.clone()), released)
    }

    fn released(flag: &std::sync::atomic::AtomicBool) -> bool {
        flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn what_a_response_holds_is_released_when_its_body_ends() {
        let (guard, flag) = held();
        let body = chunks(vec![b"event 1", b"event 2"], Duration::from_secs(5));
        let response = hold(Response::new(body), guard);
        let mut body = response.into_body();
        assert!(!released(&flag), "released with the headers");
        body.frame().await.unwrap().unwrap();
        assert!(!released(&flag), "released before the end");
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.is_none());
        assert!(released(&flag));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_past_its_expiry_ends_with_its_last_words() {
        let (guard, flag) = held();
        let body = chunks(vec![b"event 1", b"never sent"], Duration::from_secs(5));
        let response = bound(
            Response::new(body),
            guard,
            Box::pin(tokio::time::sleep(Duration::from_secs(7))),
            Box::new(|| Some(Bytes::from_static(b"data: timeout"))),
        );
        let collected = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"event 1data: timeout");
        assert!(released(&flag));
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_cut_without_last_words() {
        let (guard, _flag) = held();
        /// Announces 10 bytes and never sends them.
        struct Stalled;
        impl http_body::Body for Stalled {
            type Data = Bytes;
            type Error = std::io::Error;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
                Poll::Pending
            }
            fn size_hint(&self) -> SizeHint {
                SizeHint::with_exact(10)
            }
        }
        let body = Body::new(Stalled);
        let response = bound(
            Response::new(body),
            guard,
            Box::pin(std::future::ready(())),
            Box::new(|| Some(Bytes::from_static(b"data: timeout"))),
        );
        let collected = response.into_body().collect().await.unwrap().to_bytes();
        assert!(collected.is_empty());
    }

    #[tokio::test]
    async fn a_large_body_is_refused() {
        let e = read(Body::from("12345"), 4, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, ReadError::TooLarge(4)), "{e}");
    }
}
