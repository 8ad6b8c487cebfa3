//! The stdio transport, with the JSON-RPC hygiene rmcp's own does not give: a line that is not JSON gets a
//! parse error (-32700) and a JSON value that is not a request, notification or response gets an invalid-request
//! error (-32600, with its id when it has one) instead of silence (a client would wait for its answer forever);
//! lines are bounded by `server.body_limit`. Good lines pass to rmcp unchanged, and one writer task owns stdout,
//! so error lines never interleave with rmcp's.
//!
//! Every task here ends when stdin closes or `shutdown` is cancelled.

use serde_json::Value;

use crate::jsonrpc::{check, error_line};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Room for rmcp's side of each pipe.
const PIPE: usize = 256 * 1024;

/// Starts the filter on the process's stdin/stdout; returns the (reader, writer) pair rmcp serves on.
pub fn transport(
    max_line: usize,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> (DuplexStream, DuplexStream) {
    serve_on(
        tokio::io::stdin(),
        tokio::io::stdout(),
        max_line,
        tasks,
        shutdown,
    )
}

/// [`transport`] over any byte streams (tests use in-memory pipes).
pub fn serve_on<R, W>(
    input: R,
    output: W,
    max_line: usize,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> (DuplexStream, DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (rmcp_in, feed) = tokio::io::duplex(PIPE);
    let (rmcp_out, drain) = tokio::io::duplex(PIPE);
    let (lines, mut outgoing) = mpsc::channel::<Vec<u8>>(64);

    let errors = lines.clone();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = read_requests(BufReader::new(input), feed, errors, max_line) => {}
            () = stop.cancelled() => {}
        }
    });
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let mut from_rmcp = BufReader::new(drain);
        loop {
            let mut line = Vec::new();
            let read = tokio::select! {
                read = from_rmcp.read_until(b'\n', &mut line) => read,
                () = stop.cancelled() => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if lines.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tasks.spawn(async move {
        let mut output = output;
        while let Some(line) = outgoing.recv().await {
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                return;
            }
        }
    });
    (rmcp_in, rmcp_out)
}

/// Reads lines from the client: good ones go to rmcp, bad ones are answered on `errors`.
async fn read_requests<R: AsyncBufRead + Unpin>(
    mut input: R,
    mut feed: DuplexStream,
    errors: mpsc::Sender<Vec<u8>>,
    max_line: usize,
) {
    loop {
        let line = match read_line(&mut input, max_line).await {
            Line::End => return,
            Line::TooLong => {
                let answer = error_line(
                    Value::Null,
                    -32600,
                    &format!("request larger than server.body_limit ({max_line} bytes)"),
                );
                if errors.send(answer).await.is_err() {
                    return;
                }
                continue;
            }
            Line::Text(line) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match check(&line) {
            Ok(_) => {
                if feed.write_all(&line).await.is_err() || feed.write_all(b"\n").await.is_err() {
                    return;
                }
            }
            Err(answer) => {
                if errors.send(answer).await.is_err() {
                    return;
                }
            }
        }
    }
}

enum Line {
    Text(Vec<u8>),
    /// Longer than the limit: skipped up to its newline.
    TooLong,
    End,
}

/// One line without its newline, never holding more than `max` bytes in memory.
async fn read_line<R: AsyncBufRead + Unpin>(input: &mut R, max: usize) -> Line {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf().await {
            Ok(buf) => buf,
            Err(_) => return Line::End,
        };
        if buf.is_empty() {
            return match (line.is_empty() && !too_long, too_long) {
                (true, _) => Line::End,
                (false, true) => Line::TooLong,
                (false, false) => Line::Text(line),
            };
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        input.consume(used);
        if done.is_some() {
            return if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_skipped_whole() {
        let input = format!("{}\n{{\"ok\":1}}\nlast", "x".repeat(100));
        let mut reader = BufReader::with_capacity(8, input.as_bytes());
        assert!(matches!(read_line(&mut reader, 50).await, Line::TooLong));
        assert!(matches!(read_line(&mut reader, 50).await, Line::Text(l) if l == b"{\"ok\":1}"));
        assert!(matches!(read_line(&mut reader, 50).await, Line::Text(l) if l == b"last"));
        assert!(matches!(read_line(&mut reader, 50).await, Line::End));
    }
}
