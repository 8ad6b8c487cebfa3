#!/usr/bin/env node
// The TypeScript MCP SDK as a benchmark client for `make bench` (closed loop like bench/loadgen; same JSON output).
// It uses the SDK pinned in tests/node (read-only; job.sdk to point elsewhere). That SDK speaks the 2025 protocol
// (initialize + session; newest version 2025-11-25), so it has no stateless 2026-07-28 mode.
//
// Job (one JSON object, first argument):
//   {"mode": "legacy", "url": "http://127.0.0.1:PORT/mcp", ...}   one Client + StreamableHTTPClientTransport (its own
//                                                                   session) per virtual client
//   {"mode": "stdio", "command": "...", "args": [...], "stderrFile": "...", ...}   one server process; the virtual
//                                                                   clients' calls share its one Client
//   common: "tool", "arguments", "expect", "concurrency" (a number or a list: each level in turn, one stdio server
//   for all; the output is then {"by_c": {"1": {...}, ...}}), "duration", "warmup", "readyTimeout" (seconds), "sdk"
// Like a host, every Client lists the tools once before calling (the SDK validates structuredContent only for
// tools it has listed).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const job = JSON.parse(process.argv[2] ?? '{}');
const here = path.dirname(fileURLToPath(import.meta.url));
const sdkRoot = job.sdk ?? path.join(here, '..', 'tests', 'node', 'node_modules', '@modelcontextprotocol', 'sdk');
const load = (p) => import(pathToFileURL(path.join(sdkRoot, 'dist', 'esm', p)).href);
const { Client } = await load('client/index.js');
const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
const { StdioClientTransport } = await load('client/stdio.js');
const sdkVersion = JSON.parse(fs.readFileSync(path.join(sdkRoot, 'package.json'), 'utf8')).version;

if (job.mode !== 'stdio' && job.mode !== 'legacy') {
  process.stderr.write(`tsclient: mode ${job.mode}: the TypeScript SDK ${sdkVersion} has no stateless 2026-07-28 mode\n`);
  process.exit(64);
}
const expect = job.expect ? job.expect.replace(/^"|"$/g, '') : null;
const duration = job.duration ?? 5;
let contentTypes = {};
let window = null; // {start, end} in ms (performance.now())

// Counts the content type of every POST answered inside the measured window.
const countingFetch = async (url, init) => {
  const response = await fetch(url, init);
  if ((init?.method ?? 'GET') === 'POST' && window !== null && performance.now() >= window.start) {
    const type = (response.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    contentTypes[type] = (contentTypes[type] ?? 0) + 1;
  }
  return response;
};

function text(result) {
  let t = (result.content ?? []).map((c) => c.text ?? '').join('\n');
  if (result.structuredContent !== undefined) t += JSON.stringify(result.structuredContent);
  return t;
}

async function call(client) {
  const result = await client.callTool({ name: job.tool, arguments: job.arguments ?? {} });
  if (result.isError) throw new Error(`isError: ${text(result).slice(0, 300)}`);
  if (expect && !text(result).includes(expect)) throw new Error(`${expect} not in the answer: ${text(result).slice(0, 300)}`);
}

let protocol = null;
// Records the negotiated protocol version (the Client hands it to the transport after initialize).
function watch(transport) {
  const original = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (v) => {
    protocol = v;
    original?.(v);
  };
  return transport;
}

async function connect(transport) {
  const client = new Client({ name: 'nexus-bench-ts', version: '1' });
  await client.connect(watch(transport));
  await client.listTools();
  return client;
}

async function measure(clients) {
  // A server may still be starting (nexus-mcp over stdio answers "starting" until ready).
  const deadline = performance.now() + (job.readyTimeout ?? 60) * 1000;
  for (;;) {
    try {
      await call(clients[0]);
      break;
    } catch (e) {
      if (performance.now() > deadline) {
        process.stderr.write(`tsclient: not ready: ${e.message}\n`);
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  contentTypes = {};
  const start = performance.now() + (job.warmup ?? 1) * 1000;
  const end = start + duration * 1000;
  window = { start, end };
  const latencies = [];
  let errors = 0;
  let sampleError = null;
  let cpuStart = null;
  await Promise.all(clients.map(async (client) => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      let error = null;
      try {
        await call(client);
      } catch (e) {
        error = e;
      }
      if (t0 < start) continue;
      cpuStart ??= process.cpuUsage();
      if (error) {
        errors += 1;
        sampleError ??= String(error.message ?? error).slice(0, 300);
      } else {
        latencies.push(performance.now() - t0);
      }
    }
  }));
  const cpu = cpuStart ? process.cpuUsage(cpuStart) : { user: 0, system: 0 };
  window = null;
  if (job.mode === 'stdio') contentTypes.stdio = latencies.length + errors;
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(Math.max(Math.ceil(latencies.length * p), 1), latencies.length) - 1] : 0);
  return {
    count: latencies.length,
    errors,
    sample_error: sampleError,
    rps: latencies.length / duration,
    mean_ms: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : 0,
    p50_ms: pct(0.5),
    p95_ms: pct(0.95),
    p99_ms: pct(0.99),
    max_ms: pct(1),
    content_types: contentTypes,
    client_cpu: (cpu.user + cpu.system) / 1e6 / duration,
    protocol,
    sdk: `@modelcontextprotocol/sdk ${sdkVersion}`,
  };
}

async function closeAll(transports) {
  for (const t of transports) {
    try {
      if (job.mode === 'legacy') await t.terminateSession();
      await t.close();
    } catch {
      // best effort
    }
  }
}

const levels = [job.concurrency ?? 1].flat();
const byC = {};
if (job.mode === 'stdio') {
  // One server process for every level, as a host keeps its server.
  const stderr = job.stderrFile ? fs.openSync(job.stderrFile, 'a') : 'ignore';
  const transport = new StdioClientTransport({ command: job.command, args: job.args ?? [], env: { ...process.env }, stderr });
  const client = await connect(transport);
  for (const c of levels) byC[c] = await measure(Array(c).fill(client));
  await closeAll([transport]);
} else {
  for (const c of levels) {
    const transports = [];
    const clients = [];
    for (let i = 0; i < c; i++) {
      const transport = new StreamableHTTPClientTransport(new URL(job.url), { fetch: countingFetch });
      clients.push(await connect(transport));
      transports.push(transport);
    }
    byC[c] = await measure(clients);
    await closeAll(transports);
  }
}
const out = levels.length === 1 ? byC[levels[0]] : { by_c: byC };
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
