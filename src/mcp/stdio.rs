//! The stdio transport, with the JSON-RPC hygiene rmcp's own does not give: a line that is not JSON gets a
//! parse error (-32700) and a JSON value that is not a request, notification or response gets an invalid-request
//! error (-32600, with its id when it has one) instead of silence (a client would wait for its answer forever);
//! lines are bounded by `server.body_limit`. Good lines pass to rmcp unchanged, and one writer task owns stdout,
//! so error lines never interleave with rmcp's.
//!
//! Every task here ends when stdin closes or `shutdown` is cancelled.

use serde_json::{Value, json};
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
            Ok(()) => {
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

/// Whether a line is a JSON-RPC message rmcp can take; otherwise the error line to answer with.
fn check(line: &[u8]) -> Result<(), Vec<u8>> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| error_line(Value::Null, -32700, &format!("parse error: {e}")))?;
    let id = value
        .get("id")
        .cloned()
        .filter(|id| id.is_string() || id.is_number());
    let invalid = |why: &str| error_line(id.clone().unwrap_or(Value::Null), -32600, why);
    let Some(message) = value.as_object() else {
        return Err(invalid("invalid request: expected a JSON-RPC 2.0 object"));
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("invalid request: \"jsonrpc\" must be \"2.0\""));
    }
    let is_request = message.get("method").is_some_and(Value::is_string);
    let is_response = message.contains_key("result") || message.contains_key("error");
    if !is_request && !is_response {
        return Err(invalid(
            "invalid request: no \"method\" (nor a result or error)",
        ));
    }
    if message.contains_key("id") && id.is_none() {
        return Err(invalid(
            "invalid request: \"id\" must be a string or a number",
        ));
    }
    Ok(())
}

fn error_line(id: Value, code: i64, message: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    }))
    .unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Option<Value> {
        check(line.as_bytes())
            .err()
            .map(|l| serde_json::from_slice(&l).unwrap())
    }

    #[test]
    fn good_messages_pass() {
        assert!(answer(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_none());
        assert!(answer(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_none());
        assert!(answer(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).is_none());
    }

    #[test]
    fn bad_lines_are_answered_with_their_id_when_known() {
        let a = answer(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list""#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        let a = answer(r#"{"jsonrpc":"2.0","id":7}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (json!(7), json!(-32600))
        );
        let a = answer(r#"{"id":"x","method":"ping"}"#).unwrap();
        assert_eq!(a["id"], json!("x"));
        let a = answer(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert_eq!(a["error"]["code"], json!(-32600));
        let a = answer(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32600))
        );
    }

    #[tokio::test]
    async fn lines_are_bounded_and_skipped_whole() {
        let input = format!("{}\n{{\"ok\":1}}\nlast", "x".repeat(100));
        let mut reader = BufReader::with_capacity(8, input.as_bytes());
        assert!(matches!(read_line(&mut reader, 50).await, Line::TooLong));
        assert!(matches!(read_line(&mut reader, 50).await, Line::Text(l) if l == b"{\"ok\":1}"));
        assert!(matches!(read_line(&mut reader, 50).await, Line::Text(l) if l == b"last"));
        assert!(matches!(read_line(&mut reader, 50).await, Line::End));
    }

    proptest::proptest! {
        /// Any line: no panic, and an answer when it is not a JSON-RPC message.
        #[test]
        fn any_line_is_passed_or_answered(line in "[ -~]{0,80}") {
            if let Err(answer) = check(line.as_bytes()) {
                let v: Value = serde_json::from_slice(&answer).unwrap();
                let codes = [json!(-32700), json!(-32600)];
                proptest::prop_assert!(codes.contains(&v["error"]["code"]), "{v}");
            }
        }
    }
}
