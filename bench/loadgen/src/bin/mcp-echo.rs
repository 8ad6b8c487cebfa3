//! A trivial MCP server for the benchmark's "client's own cost" rows: it does no work at all and answers every
//! request with a canned result (captured from nexus-mcp by the benchmark, so clients parse the same bytes).
//! No rmcp, no framework: a hand-written HTTP/1.1 keep-alive loop with `TCP_NODELAY` that writes each response
//! in one `write` (`--listen ADDR`), or newline-delimited JSON-RPC on stdin/stdout (`--stdio`). `--nagle` makes it
//! a deliberately bad server (the benchmark's stall canary).
//!
//! `--canned FILE`: `{"legacy": {method: result}, "modern": {method: result}}` (e.g. `initialize`,
//! `server/discover`, `tools/list`, `tools/call`): requests carrying the 2026-07-28 per-request `_meta` get the
//! modern results, others the legacy ones. `initialize` echoes the client's `protocolVersion` and starts a session
//! (`Mcp-Session-Id`).
//! Requests carrying the 2026-07-28 per-request `_meta` are answered as JSON; others (legacy sessions) as JSON or
//! as one SSE event (`--legacy-response json|sse`). Notifications get 202. GET is 405 (no standalone stream).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

#[derive(Parser)]
struct Args {
    /// Serve Streamable HTTP at `/mcp` on this address.
    #[arg(long)]
    listen: Option<String>,
    /// Serve newline-delimited JSON-RPC on stdin/stdout instead.
    #[arg(long)]
    stdio: bool,
    #[arg(long)]
    canned: PathBuf,
    /// How legacy-session requests are answered: json or sse.
    #[arg(long, default_value = "json")]
    legacy_response: String,
    /// The stall canary: leave Nagle's algorithm on and write each response's head and body separately (what a
    /// streaming HTTP stack without `TCP_NODELAY` does). Against a client that delays its ACKs, every answer then
    /// waits ≈40 ms: the benchmark checks that it notices.
    #[arg(long)]
    nagle: bool,
}

struct Canned {
    nagle: bool,
    legacy: HashMap<String, Value>,
    modern: HashMap<String, Value>,
    sse: bool,
    sessions: AtomicU64,
}

impl Canned {
    /// The answer to one JSON-RPC message (None for notifications and responses) and whether it opened a session.
    fn answer(&self, message: &Value) -> (Option<Value>, Option<String>) {
        let (Some(method), Some(id)) = (
            message.get("method").and_then(Value::as_str),
            message.get("id"),
        ) else {
            return (None, None);
        };
        let results = if is_modern(message) {
            &self.modern
        } else {
            &self.legacy
        };
        let mut session = None;
        let answer = match method {
            "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            "initialize" => {
                let mut result = results
                    .get("initialize")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if let Some(v) = message.pointer("/params/protocolVersion") {
                    result["protocolVersion"] = v.clone();
                }
                session = Some(format!(
                    "echo-{}",
                    self.sessions.fetch_add(1, Ordering::Relaxed)
                ));
                json!({"jsonrpc": "2.0", "id": id, "result": result})
            }
            other => match results.get(other) {
                Some(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                None => json!({"jsonrpc": "2.0", "id": id,
                               "error": {"code": -32601, "message": format!("mcp-echo: no canned {other}")}}),
            },
        };
        (Some(answer), session)
    }
}

/// A 2026-07-28 request: it carries its protocol version in `_meta`.
fn is_modern(message: &Value) -> bool {
    message
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .is_some()
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One HTTP request → the complete response bytes.
fn handle(canned: &Canned, method: &str, body: &[u8]) -> Vec<u8> {
    match method {
        "POST" => {}
        "DELETE" => return response("200 OK", &[], b""),
        _ => return response("405 Method Not Allowed", &[("allow", "POST, DELETE")], b""),
    }
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return response("400 Bad Request", &[], b"not JSON");
    };
    let (answer, session) = canned.answer(&message);
    let Some(answer) = answer else {
        return response("202 Accepted", &[], b"");
    };
    let stateless = is_modern(&message);
    let mut headers = Vec::new();
    if let Some(s) = &session {
        headers.push(("mcp-session-id", s.as_str()));
    }
    let json = answer.to_string();
    if canned.sse && !stateless {
        headers.push(("content-type", "text/event-stream"));
        headers.push(("cache-control", "no-cache"));
        response(
            "200 OK",
            &headers,
            format!("event: message\ndata: {json}\n\n").as_bytes(),
        )
    } else {
        headers.push(("content-type", "application/json"));
        response("200 OK", &headers, json.as_bytes())
    }
}

async fn connection(canned: Arc<Canned>, stream: tokio::net::TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(!canned.nagle)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut head = Vec::new();
        loop {
            let n = read.read_until(b'\n', &mut head).await?;
            if n == 0 {
                return Ok(());
            }
            if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.lines();
        let method = lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        let (mut length, mut close) = (0usize, false);
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                } else if k == "transfer-encoding" {
                    // No client here sends chunked requests; refuse rather than misread.
                    write
                        .write_all(&response(
                            "411 Length Required",
                            &[("connection", "close")],
                            b"",
                        ))
                        .await?;
                    return Ok(());
                }
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        let answer = handle(&canned, &method, &body);
        if canned.nagle {
            let split = answer
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(answer.len(), |i| i + 4);
            write.write_all(&answer[..split]).await?;
            write.write_all(&answer[split..]).await?;
        } else {
            write.write_all(&answer).await?;
        }
        if close {
            return Ok(());
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.canned).expect("readable --canned file");
    let mut eras: HashMap<String, HashMap<String, Value>> =
        serde_json::from_str(&text).expect("--canned: {\"legacy\": {..}, \"modern\": {..}}");
    let canned = Arc::new(Canned {
        legacy: eras.remove("legacy").unwrap_or_default(),
        modern: eras.remove("modern").unwrap_or_default(),
        sse: match args.legacy_response.as_str() {
            "sse" => true,
            "json" => false,
            other => panic!("--legacy-response {other}: json or sse"),
        },
        sessions: AtomicU64::new(1),
        nagle: args.nagle,
    });
    if args.stdio {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut stdout = tokio::io::stdout();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let (Some(answer), _) = canned.answer(&message) {
                let mut out = answer.to_string();
                out.push('\n');
                if stdout.write_all(out.as_bytes()).await.is_err() || stdout.flush().await.is_err()
                {
                    break;
                }
            }
        }
        return;
    }
    let listen = args.listen.expect("--listen ADDR or --stdio");
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("binding {listen}: {e}"));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(canned.clone(), stream));
    }
}
