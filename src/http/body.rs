//! Request and response bodies at the edge: reading a request body under a size limit and a deadline.

use std::time::Duration;

use axum::body::{Body, Bytes};
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

    #[tokio::test]
    async fn a_large_body_is_refused() {
        let e = read(Body::from("12345"), 4, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, ReadError::TooLarge(4)), "{e}");
    }
}
