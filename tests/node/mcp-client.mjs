#!/usr/bin/env node
// A real MCP host's client for the integration tests: the TypeScript SDK's own `Client` (what Claude Desktop, Cursor,
// VS Code and the MCP Inspector use), over `StreamableHTTPClientTransport` or `StdioClientTransport`.
//
// Input: ONE JSON job, as the first argument or on stdin:
//   {"transport": "http", "url": "http://127.0.0.1:PORT/mcp", "headers": {...},
//    "elicit": "accept" | "decline" | null,
//    "listTools": true,            // tools/list right after connecting, as hosts do (default true); the SDK only
//                                  // validates structuredContent against outputSchema for tools it has listed
//    "timeoutMs": 60000,           // per request
//    "calls": [{"method": "tools/list"},
//              {"method": "tools/call", "name": "find", "arguments": {...}},
//              {"method": "resources/read", "uri": "nexus://status"},
//              {"method": "resources/list"}, {"method": "ping"}]}
//   {"transport": "stdio", "command": "/path/nexus-mcp", "args": [...], "env": {...}, "cwd": "...",
//    "stderrFile": "/path/server.log", ...}
//
// Output: ONE JSON object on stdout:
//   {"results": [{"ok": true, "result": {...}} | {"ok": false, "error": {"code", "message", "name", "data"}}],
//    "asked": [elicitation messages], "protocolVersion": "...", "sessionId": "..." | null, "serverInfo": {...}}
// A call that throws (e.g. the SDK's "MCP error -32602: Structured content does not match the tool's output
// schema") is reported as {"ok": false} and the next call runs. Exit codes: 0 = job ran (whatever the calls
// returned), 64 = bad job, 69 = could not connect / initialize; the reason goes to stderr.

import fs from 'node:fs';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;

function die(code, message) {
  process.stderr.write(`mcp-client.mjs: ${message}\n`);
  process.exit(code);
}

async function readJob() {
  let text = process.argv[2];
  if (text === undefined || text === '-') {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    text = Buffer.concat(chunks).toString('utf8');
  }
  if (!text.trim()) die(EX_USAGE, 'no job: pass one JSON object as the first argument or on stdin');
  let job;
  try {
    job = JSON.parse(text);
  } catch (e) {
    die(EX_USAGE, `the job is not JSON: ${e.message}`);
  }
  if (job === null || typeof job !== 'object' || Array.isArray(job)) die(EX_USAGE, 'the job must be a JSON object');
  if (!Array.isArray(job.calls)) die(EX_USAGE, 'job.calls must be an array');
  if (![undefined, null, 'accept', 'decline'].includes(job.elicit)) {
    die(EX_USAGE, `job.elicit must be "accept", "decline" or null, not ${JSON.stringify(job.elicit)}`);
  }
  return job;
}

function transportFor(job) {
  if (job.transport === 'http') {
    if (typeof job.url !== 'string') die(EX_USAGE, 'job.url is required for the http transport');
    return new StreamableHTTPClientTransport(new URL(job.url), { requestInit: { headers: job.headers ?? {} } });
  }
  if (job.transport === 'stdio') {
    if (typeof job.command !== 'string') die(EX_USAGE, 'job.command is required for the stdio transport');
    const stderr = job.stderrFile ? fs.openSync(job.stderrFile, 'a') : 'inherit';
    return new StdioClientTransport({
      command: job.command, args: job.args ?? [], env: job.env, cwd: job.cwd, stderr,
    });
  }
  return die(EX_USAGE, `job.transport must be "http" or "stdio", not ${JSON.stringify(job.transport)}`);
}

function describe(e) {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause ? ` (cause: ${describe(e.cause)})` : '';
  return `${e.message}${cause}`;
}

function errorOf(e) {
  const error = { name: e?.constructor?.name ?? typeof e, message: e instanceof Error ? e.message : String(e) };
  if (e && typeof e === 'object' && 'code' in e) error.code = e.code;
  if (e && typeof e === 'object' && e.data !== undefined) error.data = e.data;
  return error;
}

async function run(client, call, options) {
  switch (call.method) {
    case 'tools/list':
      return client.listTools({}, options);
    case 'tools/call':
      // callTool validates structuredContent against the listed outputSchema, as every TS-SDK host does.
      return client.callTool({ name: call.name, arguments: call.arguments ?? {} }, undefined, options);
    case 'resources/list':
      return client.listResources({}, options);
    case 'resources/read':
      return client.readResource({ uri: call.uri }, options);
    case 'ping':
      return client.ping(options);
    default:
      throw new Error(`unsupported call method ${JSON.stringify(call.method)}`);
  }
}

async function main() {
  const job = await readJob();
  const asked = [];
  const capabilities = job.elicit ? { elicitation: {} } : {};
  const client = new Client({ name: 'nexus-tests-ts-sdk', version: '1.0.0' }, { capabilities });
  if (job.elicit) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return job.elicit === 'accept' ? { action: 'accept', content: { confirm: true } } : { action: 'decline' };
    });
  }
  const transport = transportFor(job);
  const options = { timeout: job.timeoutMs ?? 60000 };
  try {
    await client.connect(transport, options);
  } catch (e) {
    die(EX_UNAVAILABLE, `could not connect over ${job.transport}: ${describe(e)}`);
  }
  if (job.listTools ?? true) {
    try {
      await client.listTools({}, options);
    } catch (e) {
      await client.close().catch(() => {});
      die(EX_UNAVAILABLE, `tools/list after connecting failed: ${describe(e)}`);
    }
  }
  const results = [];
  for (const call of job.calls) {
    try {
      results.push({ ok: true, result: await run(client, call, options) });
    } catch (e) {
      results.push({ ok: false, error: errorOf(e) });
    }
  }
  const out = {
    results,
    asked,
    protocolVersion: transport.protocolVersion ?? null,
    sessionId: transport.sessionId ?? null,
    serverInfo: client.getServerVersion() ?? null,
  };
  // Legacy HTTP sessions are ended with DELETE, as hosts do on exit; a refusal is not the job's business.
  if (job.transport === 'http' && transport.sessionId) await transport.terminateSession().catch(() => {});
  await client.close().catch(() => {});
  // Exit once the answer is flushed, whatever handles a transport may leave behind.
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}

main().catch((e) => die(70, `unexpected failure: ${e instanceof Error ? e.stack : e}`));
