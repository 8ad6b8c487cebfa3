//! `nexus-mcp health`: a minimal HTTP/1.1 GET so a Docker HEALTHCHECK works in an image without curl.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a probe got no status.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}: only http:// URLs are supported")]
    Scheme(String),
    #[error("{0}: no host")]
    NoHost(String),
    #[error("connect {addr}: {cause}")]
    Connect { addr: String, cause: std::io::Error },
    #[error("{addr}: {cause}")]
    Io { addr: String, cause: std::io::Error },
    #[error("{0}: malformed HTTP answer")]
    Malformed(String),
    #[error("no answer from {addr} within {ms} ms")]
    Timeout { addr: String, ms: u128 },
}

/// GETs `url` (`http://host:port/path`) and returns the status code.
///
/// # Errors
/// What failed: bad URL, connect, I/O, timeout, malformed answer.
pub async fn get_status(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Scheme(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(ProbeError::NoHost(url.to_string()));
    }
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let exchange = async {
        let mut stream = TcpStream::connect(&addr)
            .await
            .map_err(|cause| ProbeError::Connect {
                addr: addr.clone(),
                cause,
            })?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|cause| ProbeError::Io {
                addr: addr.clone(),
                cause,
            })?;
        let mut head = [0u8; 64];
        let mut filled = 0;
        while filled < 12 {
            let n = stream
                .read(&mut head[filled..])
                .await
                .map_err(|cause| ProbeError::Io {
                    addr: addr.clone(),
                    cause,
                })?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        parse_status(&head[..filled]).ok_or_else(|| ProbeError::Malformed(addr.clone()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout {
            addr: addr.clone(),
            ms: timeout.as_millis(),
        })?
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"HTTP/1.1 200"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
    }

    #[tokio::test]
    async fn rejects_what_it_cannot_probe() {
        assert!(
            get_status("https://x/health", Duration::from_secs(1))
                .await
                .unwrap_err()
                .to_string()
                .contains("http://")
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = get_status(&format!("http://{closed}/health"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeError::Connect { .. }), "{e}");
    }
}
