//! A closed-loop load generator: `--concurrency` workers each POST the request body to `--url` as fast as the
//! server answers, for `--duration` (after `--warmup`), and check every answer (HTTP 200 and `--expect` in the
//! body). Prints one JSON object: count, errors, calls/s and latency percentiles in milliseconds.
//!
//! With `--mongo URI --op list-collections|find|aggregate`, the workers run the same query directly with the
//! Rust driver instead (the "raw driver" floor: what a tool call cannot beat).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "")]
    url: String,
    /// The JSON-RPC request body (a file path).
    #[arg(long, default_value = "/dev/null")]
    body: std::path::PathBuf,
    /// Extra headers, `Name: value`.
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value = "5", value_parser = secs)]
    duration: Duration,
    #[arg(long, default_value = "1", value_parser = secs)]
    warmup: Duration,
    /// A substring every successful answer must contain.
    #[arg(long)]
    expect: Option<String>,
    /// Query MongoDB directly at this URI instead of POSTing (`--url`/`--body` are then ignored).
    #[arg(long)]
    mongo: Option<String>,
    /// The direct query: list-collections, find or aggregate (the benchmark's tool calls).
    #[arg(long, default_value = "find")]
    op: String,
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

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let body = Arc::new(std::fs::read(&args.body).expect("readable --body file"));
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
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let expect = Arc::new(args.expect.clone());
    let mongo = match &args.mongo {
        Some(uri) => Some(
            mongodb::Client::with_uri_str(uri)
                .await
                .expect("valid --mongo URI"),
        ),
        None => None,
    };
    let op = Arc::new(args.op.clone());
    let start = Instant::now() + args.warmup;
    let end = start + args.duration;
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, body, expect, url) = (
            client.clone(),
            body.clone(),
            expect.clone(),
            args.url.clone(),
        );
        let (mongo, op) = (mongo.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut sample_error) = (Vec::new(), 0u64, None);
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let outcome = if let Some(m) = &mongo {
                    mongo_op(m, &op).await
                } else {
                    match client.post(&url).body(body.as_ref().clone()).send().await {
                        Ok(r) => {
                            let status = r.status();
                            match r.text().await {
                                Ok(text)
                                    if status.is_success()
                                        && expect.as_deref().is_none_or(|e| text.contains(e)) =>
                                {
                                    Ok(())
                                }
                                Ok(text) => Err(format!(
                                    "{status}: {}",
                                    text.chars().take(300).collect::<String>()
                                )),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    }
                };
                if t0 < start {
                    continue;
                }
                match outcome {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(e) => {
                        errors += 1;
                        sample_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, sample_error)
        }));
    }
    let (mut all, mut errors, mut sample) = (Vec::new(), 0, None);
    for w in workers {
        let (l, e, s) = w.await.unwrap();
        all.extend(l);
        errors += e;
        if sample.is_none() {
            sample = s;
        }
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
    let out = serde_json::json!({
        "count": all.len(),
        "errors": errors,
        "sample_error": sample,
        "rps": all.len() as f64 / args.duration.as_secs_f64(),
        "mean_ms": mean,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
    });
    println!("{out}");
}
