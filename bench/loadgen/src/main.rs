//! A closed-loop load generator: `--concurrency` virtual clients each send the same MCP request as fast as the
//! server answers, for `--duration` (after `--warmup`), and check every answer (HTTP 200 where HTTP is used, a
//! JSON-RPC `result` for the request's id that is not `isError`, and `--expect` in the message). Prints one JSON
//! object: count, errors (and how many of each kind: `http 503`, `http 429`, `json-rpc error`, `isError`,
//! `transport`, …), calls/s, latency percentiles in milliseconds, the response content types seen and the
//! load generator's own CPU use during the measured window. `--concurrency 1,8,32` measures each level in turn
//! (one stdio server process for all) and prints `{"by_c": {"1": {...}, "8": {...}, "32": {...}}}`.
//!
//! Client modes (`--mode`), each virtual client on its own keep-alive HTTP/1.1 connection:
//! - `stateless`: the body as given (a 2026-07-28 request with its `_meta`), no handshake (the default).
//! - `legacy`: per virtual client, `initialize` (`--protocol-version`, 2025-06-18 by default) → `Mcp-Session-Id` →
//!   `notifications/initialized` → calls carrying the session id; answers may be JSON or SSE (the `data:` event
//!   with the request's id is taken); the session is deleted at the end.
//! - `stdio`: spawns the server command given after `--`, speaks newline-delimited JSON-RPC on its stdin/stdout
//!   (one process; the virtual clients' requests are in flight together on its pipe, told apart by id).
//!
//! With `--mongo URI --op list-collections|find|aggregate`, the workers run the same query directly with the
//! Rust driver instead (the "raw driver" floor: what a tool call cannot beat).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::{mpsc, oneshot};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "")]
    url: String,
    /// The JSON-RPC request body (a file path). Its `id` is replaced by a fresh one for every call.
    #[arg(long, default_value = "/dev/null")]
    body: PathBuf,
    /// Extra headers on every call, `Name: value`.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Virtual clients; a comma-separated list (e.g. `1,8,32`) measures each in turn with the same server (one stdio
    /// process for all) and prints `{"by_c": {"1": {...}, ...}}`.
    #[arg(long, default_value = "1")]
    concurrency: String,
    #[arg(long, default_value = "5", value_parser = secs)]
    duration: Duration,
    #[arg(long, default_value = "1", value_parser = secs)]
    warmup: Duration,
    /// A substring every successful answer must contain.
    #[arg(long)]
    expect: Option<String>,
    /// stateless, legacy or stdio (see the crate documentation).
    #[arg(long, default_value = "stateless")]
    mode: String,
    /// The protocol version of the `initialize` handshake (legacy and stdio modes).
    #[arg(long, default_value = "2025-06-18")]
    protocol_version: String,
    /// Before the warm-up, repeat the call until one answer passes the checks (a server may still be connecting
    /// to MongoDB: nexus-mcp over stdio answers "starting" until ready), for at most this long.
    #[arg(long, default_value = "60", value_parser = secs)]
    ready_timeout: Duration,
    /// stdio mode: a file for the server's stderr (default: discarded).
    #[arg(long)]
    stderr: Option<PathBuf>,
    /// Query MongoDB directly at this URI instead of calling a tool (`--url`/`--body` are then ignored).
    #[arg(long)]
    mongo: Option<String>,
    /// The direct query: list-collections, find or aggregate (the benchmark's tool calls).
    #[arg(long, default_value = "find")]
    op: String,
    /// stdio mode: the server's command line.
    #[arg(last = true)]
    command: Vec<String>,
}

/// One direct driver round trip equivalent to the benchmark's tool call.
async fn mongo_op(client: &mongodb::Client, op: &str) -> Result<(), String> {
    use futures::TryStreamExt as _;
    use mongodb::bson::{Document, doc};
    let db = client.database("shop");
    let orders = db.collection::<Document>("orders");
    let n = match op {
        "list-collections" => {
            let r = db
                .run_command(doc! { "listCollections": 1, "nameOnly": true })
                .await
                .map_err(|e| e.to_string())?;
            r.get_document("cursor")
                .and_then(|c| c.get_array("firstBatch"))
                .map(Vec::len)
                .unwrap_or(0)
        }
        "find" => {
            let c = orders
                .find(doc! { "status": "new" })
                .limit(10)
                .await
                .map_err(|e| e.to_string())?;
            c.try_collect::<Vec<_>>()
                .await
                .map_err(|e| e.to_string())?
                .len()
        }
        "aggregate" => {
            let pipeline = vec![
                doc! { "$match": { "status": "paid" } },
                doc! { "$group": { "_id": "$status", "n": { "$sum": 1 }, "total": { "$sum": "$total" } } },
            ];
            let c = orders
                .aggregate(pipeline)
                .await
                .map_err(|e| e.to_string())?;
            c.try_collect::<Vec<_>>()
                .await
                .map_err(|e| e.to_string())?
                .len()
        }
        other => return Err(format!("unknown --op {other}")),
    };
    if n == 0 {
        Err(format!("{op}: empty result"))
    } else {
        Ok(())
    }
}

fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|e| e.to_string())
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// The JSON-RPC message answering request `id` in an HTTP body (plain JSON, or the SSE `data:` event carrying
/// it) or a stdio line, checked: a `result`, not `isError`, containing `expect`. Returns the message.
fn check_message(body: &str, sse: bool, id: u64, expect: Option<&str>) -> Result<Value, String> {
    let candidates: Vec<String> = if sse {
        // Events are separated by a blank line; an event's data is its `data:` lines joined by newlines.
        body.replace("\r\n", "\n")
            .split("\n\n")
            .filter_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                (!data.is_empty()).then(|| data.join("\n"))
            })
            .collect()
    } else {
        vec![body.to_owned()]
    };
    for text in candidates {
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if message.get("id").and_then(Value::as_u64) != Some(id) {
            continue;
        }
        let Some(result) = message.get("result") else {
            return Err(format!("error answer: {}", clip(&text)));
        };
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return Err(format!("isError: {}", clip(&text)));
        }
        if let Some(e) = expect
            && !text.contains(e)
        {
            return Err(format!("{e:?} not in the answer: {}", clip(&text)));
        }
        return Ok(message);
    }
    Err(format!("no answer for id {id} in: {}", clip(body)))
}

/// The kind of a failed call, for the `error_kinds` counts: the HTTP status of a refused request (`http 503`: a
/// server limit; `http 429`: a rate or per-caller limit), a JSON-RPC error, a tool error, a wrong answer, or a
/// transport failure (connection refused or reset, timeout).
fn error_kind(error: &str) -> String {
    let status = error.split_whitespace().next().unwrap_or("");
    if status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()) {
        return format!("http {status}");
    }
    for (prefix, kind) in [
        ("error answer", "json-rpc error"),
        ("isError", "isError"),
        ("no answer for id", "no answer"),
    ] {
        if error.starts_with(prefix) {
            return kind.into();
        }
    }
    if error.contains("not in the answer") {
        "unexpected answer".into()
    } else {
        "transport".into()
    }
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (USER_HZ = 100 on Linux).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// The request, with a fresh id.
fn with_id(template: &Value, id: u64) -> Value {
    let mut message = template.clone();
    message["id"] = json!(id);
    message
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn initialize_request(protocol_version: &str, id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": protocol_version, "capabilities": {},
        "clientInfo": {"name": "nexus-bench-loadgen", "version": "1"}}})
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// One virtual client on its own keep-alive HTTP/1.1 connection (stateless or a legacy session).
struct HttpClient {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    protocol_version: Option<String>,
    content_types: HashMap<String, u64>,
}

impl HttpClient {
    fn new(url: &str, headers: &reqwest::header::HeaderMap) -> Self {
        let http = reqwest::Client::builder()
            .default_headers(headers.clone())
            .http1_only()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        HttpClient {
            http,
            url: url.to_owned(),
            session: None,
            protocol_version: None,
            content_types: HashMap::new(),
        }
    }

    async fn post(&mut self, body: String) -> Result<(reqwest::StatusCode, bool, String), String> {
        let mut request = self.http.post(&self.url).body(body);
        if let Some(s) = &self.session {
            request = request.header("mcp-session-id", s);
        }
        if let Some(v) = &self.protocol_version {
            request = request.header("mcp-protocol-version", v);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if self.session.is_none() {
            self.session = session;
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        *self.content_types.entry(content_type.clone()).or_default() += 1;
        Ok((status, content_type == "text/event-stream", text))
    }

    async fn call(&mut self, template: &Value, expect: Option<&str>) -> Result<(), String> {
        let id = next_id();
        let (status, sse, text) = self.post(with_id(template, id).to_string()).await?;
        if !status.is_success() {
            return Err(format!("{status}: {}", clip(&text)));
        }
        check_message(&text, sse, id, expect).map(drop)
    }

    /// `initialize` → session id → `notifications/initialized`.
    async fn handshake(&mut self, protocol_version: &str) -> Result<(), String> {
        let id = next_id();
        let (status, sse, text) = self
            .post(initialize_request(protocol_version, id).to_string())
            .await?;
        if !status.is_success() {
            return Err(format!("initialize: {status}: {}", clip(&text)));
        }
        let answer = check_message(&text, sse, id, None)?;
        let negotiated = answer["result"]["protocolVersion"]
            .as_str()
            .unwrap_or(protocol_version)
            .to_owned();
        self.protocol_version = Some(negotiated);
        let (status, _, text) = self.post(INITIALIZED.to_owned()).await?;
        if !status.is_success() {
            return Err(format!(
                "notifications/initialized: {status}: {}",
                clip(&text)
            ));
        }
        // The handshake's own answers are not part of the measurement.
        self.content_types.clear();
        Ok(())
    }

    async fn close(&self) {
        if let Some(s) = &self.session {
            let mut request = self.http.delete(&self.url).header("mcp-session-id", s);
            if let Some(v) = &self.protocol_version {
                request = request.header("mcp-protocol-version", v);
            }
            let _ = request.send().await;
        }
    }
}

/// One stdio server process shared by every virtual client: requests are told apart by id.
struct StdioConn {
    to_server: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<String>>>>,
}

impl StdioConn {
    async fn spawn(
        command: &[String],
        stderr: Option<&PathBuf>,
    ) -> Result<(Self, tokio::process::Child), String> {
        let (program, args) = command
            .split_first()
            .ok_or("--mode stdio needs the server command after `--`")?;
        let stderr = match stderr {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(std::process::Stdio::from)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            None => std::process::Stdio::null(),
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning {program}: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (to_server, mut outbox) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(mut line) = outbox.recv().await {
                line.push('\n');
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
            // Dropping stdin closes the pipe: the server's cue to exit.
        });
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<String>>>> = Arc::default();
        // Weak: the writer must end (closing stdin) once the virtual clients are gone.
        let (answers, replies) = (pending.clone(), to_server.downgrade());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let id = message.get("id").cloned();
                if message.get("method").is_some() {
                    // A request from the server (ping, roots/list, …): answer so it never waits on us.
                    if let Some(id) = id {
                        let answer = if message["method"] == "ping" {
                            json!({"jsonrpc": "2.0", "id": id, "result": {}})
                        } else {
                            json!({"jsonrpc": "2.0", "id": id,
                                   "error": {"code": -32601, "message": "not supported by the load generator"}})
                        };
                        if let Some(replies) = replies.upgrade() {
                            let _ = replies.send(answer.to_string());
                        }
                    }
                    continue;
                }
                if let Some(id) = id.as_ref().and_then(Value::as_u64)
                    && let Some(waiter) = answers.lock().unwrap().remove(&id)
                {
                    let _ = waiter.send(line);
                }
            }
            answers.lock().unwrap().clear();
        });
        Ok((StdioConn { to_server, pending }, child))
    }

    async fn request(&self, message: Value, id: u64) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.to_server
            .send(message.to_string())
            .map_err(|_| "the server's stdin is closed".to_owned())?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(_)) => Err("the server closed stdout (exited?)".into()),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err("no answer within 30 s".into())
            }
        }
    }

    async fn call(&self, template: &Value, expect: Option<&str>) -> Result<(), String> {
        let id = next_id();
        let line = self.request(with_id(template, id), id).await?;
        check_message(&line, false, id, expect).map(drop)
    }

    async fn handshake(&self, protocol_version: &str) -> Result<(), String> {
        let id = next_id();
        let line = self
            .request(initialize_request(protocol_version, id), id)
            .await?;
        check_message(&line, false, id, None)?;
        self.to_server
            .send(INITIALIZED.to_owned())
            .map_err(|_| "the server's stdin is closed".to_owned())
    }
}

/// How a virtual client sends one call.
enum Caller {
    Http(HttpClient),
    Stdio(Arc<StdioConn>),
    Mongo(mongodb::Client, Arc<String>),
}

impl Caller {
    async fn call(&mut self, template: &Value, expect: Option<&str>) -> Result<(), String> {
        match self {
            Caller::Http(c) => c.call(template, expect).await,
            Caller::Stdio(c) => c.call(template, expect).await,
            Caller::Mongo(m, op) => mongo_op(m, op).await,
        }
    }
}

/// Repeats the call until it passes (bounded by `timeout`); returns the last error otherwise.
async fn wait_ready(
    caller: &mut Caller,
    template: &Value,
    expect: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match caller.call(template, expect).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("not ready after {timeout:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("loadgen: {message}");
    std::process::exit(1)
}

/// Everything one measurement needs besides its virtual clients.
struct Run {
    template: Arc<Value>,
    expect: Arc<Option<String>>,
    duration: Duration,
    warmup: Duration,
    ready_timeout: Duration,
}

/// Waits until the first virtual client gets a right answer, then runs them all closed-loop for the warm-up and
/// the measured window; returns the JSON summary.
async fn measure(run: &Run, mut callers: Vec<Caller>, stdio: bool) -> Value {
    if let Some(first) = callers.first_mut() {
        wait_ready(
            first,
            &run.template,
            run.expect.as_deref(),
            run.ready_timeout,
        )
        .await
        .unwrap_or_else(|e| fail(&e));
    }
    if let Some(Caller::Http(c)) = callers.first_mut() {
        c.content_types.clear();
    }
    let start = Instant::now() + run.warmup;
    let end = start + run.duration;
    let cpu_at_start = Arc::new(Mutex::new(None::<f64>));
    let mut workers = Vec::new();
    for mut caller in callers {
        let (template, expect, cpu_at_start) = (
            run.template.clone(),
            run.expect.clone(),
            cpu_at_start.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut sample_error) = (Vec::new(), 0u64, None);
            let mut kinds: HashMap<String, u64> = HashMap::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                if t0 >= start {
                    cpu_at_start.lock().unwrap().get_or_insert_with(cpu_seconds);
                }
                let outcome = caller.call(&template, expect.as_deref()).await;
                if t0 < start {
                    if let Caller::Http(c) = &mut caller {
                        c.content_types.clear();
                    }
                    continue;
                }
                match outcome {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(e) => {
                        errors += 1;
                        *kinds.entry(error_kind(&e)).or_default() += 1;
                        sample_error.get_or_insert(e);
                    }
                }
            }
            let content_types = match &caller {
                Caller::Http(c) => {
                    c.close().await;
                    c.content_types.clone()
                }
                _ => HashMap::new(),
            };
            (latencies, errors, sample_error, content_types, kinds)
        }));
    }
    let (mut all, mut errors, mut sample) = (Vec::new(), 0, None);
    let mut content_types: HashMap<String, u64> = HashMap::new();
    let mut error_kinds: HashMap<String, u64> = HashMap::new();
    for w in workers {
        let (l, e, s, types, kinds) = w.await.unwrap();
        for (k, v) in kinds {
            *error_kinds.entry(k).or_default() += v;
        }
        all.extend(l);
        errors += e;
        if sample.is_none() {
            sample = s;
        }
        for (k, v) in types {
            *content_types.entry(k).or_default() += v;
        }
    }
    let cpu = cpu_seconds() - cpu_at_start.lock().unwrap().unwrap_or_else(cpu_seconds);
    if stdio {
        content_types.insert("stdio".into(), all.len() as u64 + errors);
    }
    all.sort();
    let pct = |p: f64| {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i].as_secs_f64() * 1e3
    };
    let mean = if all.is_empty() {
        0.0
    } else {
        all.iter().map(Duration::as_secs_f64).sum::<f64>() / all.len() as f64 * 1e3
    };
    json!({
        "count": all.len(),
        "errors": errors,
        "error_kinds": error_kinds,
        "sample_error": sample,
        "rps": all.len() as f64 / run.duration.as_secs_f64(),
        "mean_ms": mean,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "content_types": content_types,
        "client_cpu": cpu / run.duration.as_secs_f64(),
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let levels: Vec<usize> = args
        .concurrency
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .unwrap_or_else(|e| fail(&format!("--concurrency {c}: {e}")))
        })
        .collect();
    let template: Value = if args.mongo.is_some() {
        Value::Null
    } else {
        let raw = std::fs::read(&args.body).unwrap_or_else(|e| fail(&format!("--body: {e}")));
        serde_json::from_slice(&raw).unwrap_or_else(|e| fail(&format!("--body is not JSON: {e}")))
    };
    let run = Run {
        template: Arc::new(template),
        expect: Arc::new(args.expect.clone()),
        duration: args.duration,
        warmup: args.warmup,
        ready_timeout: args.ready_timeout,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert(
        "accept",
        "application/json, text/event-stream".parse().unwrap(),
    );
    for h in &args.headers {
        let (k, v) = h.split_once(':').expect("header as `Name: value`");
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    let mongo = match &args.mongo {
        Some(uri) => Some(
            mongodb::Client::with_uri_str(uri)
                .await
                .expect("valid --mongo URI"),
        ),
        None => None,
    };
    let mode = if mongo.is_some() {
        "mongo"
    } else {
        args.mode.as_str()
    };
    if !["mongo", "stateless", "legacy", "stdio"].contains(&mode) {
        fail(&format!(
            "unknown --mode {mode} (stateless, legacy or stdio)"
        ));
    }

    // stdio: one server process for every level (a host keeps its server); its handshake is not measured.
    let (mut conn, mut child) = (None, None);
    if mode == "stdio" {
        let (c, process) = StdioConn::spawn(&args.command, args.stderr.as_ref())
            .await
            .unwrap_or_else(|e| fail(&e));
        c.handshake(&args.protocol_version)
            .await
            .unwrap_or_else(|e| fail(&format!("stdio handshake: {e}")));
        conn = Some(Arc::new(c));
        child = Some(process);
    }

    let mut results = serde_json::Map::new();
    for &concurrency in &levels {
        // Connect every virtual client (handshakes are not measured).
        let mut callers = Vec::new();
        for _ in 0..concurrency {
            callers.push(match mode {
                "mongo" => {
                    Caller::Mongo(mongo.clone().expect("--mongo"), Arc::new(args.op.clone()))
                }
                "stdio" => Caller::Stdio(conn.clone().expect("a stdio connection")),
                _ => {
                    let mut c = HttpClient::new(&args.url, &headers);
                    if mode == "legacy" {
                        c.handshake(&args.protocol_version)
                            .await
                            .unwrap_or_else(|e| fail(&format!("legacy handshake: {e}")));
                    }
                    Caller::Http(c)
                }
            });
        }
        results.insert(
            concurrency.to_string(),
            measure(&run, callers, mode == "stdio").await,
        );
    }

    if let Some(mut process) = child {
        // The last virtual client is gone with `conn`: the writer task ends and closes the server's stdin, its cue
        // to exit. Then make sure.
        drop(conn);
        if tokio::time::timeout(Duration::from_secs(5), process.wait())
            .await
            .is_err()
        {
            let _ = process.kill().await;
        }
    }
    let out = if levels.len() == 1 {
        results
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null)
    } else {
        json!({ "by_c": results })
    };
    println!("{out}");
}
