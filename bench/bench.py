#!/usr/bin/env python3
"""`make bench`: nexus-mcp side by side with the official MongoDB MCP server behind `ssh -N -L`, in one run.

Everything runs on this machine on loopback: an OpenSSH sshd bastion, nx-27017 with a fixed dataset (the shop
sample data + 20 000 documents of ~1 KB), nexus-mcp (release build) and mongodb-mcp-server@3.0.4 (npm, pinned in
bench/official). Contenders are interleaved (A B, then B A, …) so drift on this shared 2-core machine hits both.

Writes bench/results/<date>.md, .json and .png, and BENCHMARKS.md at the root.
`--soak` runs the soak test instead (50 clients for 10 minutes against nexus-mcp).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

import pymongo  # noqa: E402

from sample_data import seed  # noqa: E402
from support import MongoWire, Nexus, Proc, Sshd, keygen  # noqa: E402
from support.procs import descendants, free_port, port_open, wait_until  # noqa: E402
from support.rawhttp import stateless_call  # noqa: E402
from support.ssh import current_user  # noqa: E402

NEXUS = REPO / "target" / "release" / "nexus-mcp"
LOADGEN = REPO / "target" / "release" / "loadgen"
OFFICIAL = REPO / "bench" / "official" / "node_modules" / "mongodb-mcp-server" / "dist" / "esm" / "index.js"
RESULTS = REPO / "bench" / "results"

TOOLS = {
    "list-collections": ({"database": "shop"}, '\\"orders\\"'),
    "find": ({"database": "shop", "collection": "orders", "filter": {"status": "new"}, "limit": 10}, '\\"status\\"'),
    "aggregate": ({"database": "shop", "collection": "orders", "pipeline": [
        {"$match": {"status": "paid"}},
        {"$group": {"_id": "$status", "n": {"$sum": 1}, "total": {"$sum": "$total"}}}]}, '\\"total\\"'),
}
CONCURRENCY = [1, 8, 32]


def rss_kib(pid: int, tree: bool = False) -> int:
    total = 0
    for p in [pid, *(descendants(pid) if tree else [])]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Sampler:
    """Samples a process's RSS every 100 ms in the background (peak)."""

    def __init__(self, pid: int, tree: bool):
        self.pid, self.tree, self.peak, self._stop = pid, tree, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid, self.tree))
            time.sleep(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def call_body(tool: str, arguments: dict) -> dict:
    """The same stateless request for both servers (the official one needs its connectionId; nexus ignores it)."""
    return stateless_call(tool, {**arguments, "connectionId": "preconfigured"})[0]


def loadgen(args: list[str]) -> dict:
    out = subprocess.run([str(LOADGEN), *args], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


class Bench:
    def __init__(self, work: Path, quick: bool):
        self.work = work
        self.quick = quick
        self.duration = "2" if quick else "4"
        self.reps = 1 if quick else 3
        self.key = keygen(work)
        self.sshd = Sshd(work / "sshd", authorized_keys=[self.key])
        self.mongo = MongoWire(work / "mongo")
        print("seeding: shop sample data + bulk.docs (20 000 × ~1 KB)…", flush=True)
        with self.mongo.client() as c:
            self.counts = seed(c, scale=1.0)
            payload = "x" * 1000
            for start in range(0, 20_000, 2_000):
                c.bulk.docs.insert_many([{"i": i, "p": payload} for i in range(start, start + 2_000)])
            c.bulk.docs.create_index("i")
        self.known_hosts = work / "known_hosts"
        self.known_hosts.write_text(self.sshd.known_hosts_line())
        self.results: dict = {"machine": machine(), "started": dt.datetime.now(dt.timezone.utc).isoformat()}

    # --- contenders -------------------------------------------------------------------------------------------

    def nexus_config(self) -> dict:
        return {
            "server": {"rate_limit": 0.0, "max_in_flight": 1024, "audit_log": "off"},
            "ssh": {"host": self.sshd.host, "port": self.sshd.port, "user": current_user(),
                    "private_key": str(self.key), "known_hosts": str(self.known_hosts),
                    "keepalive_interval": "1s", "keepalive_max": 2, "reconnect_min_delay": "100ms",
                    "reconnect_max_delay": "1s"},
            "mongo": {"uri": f"mongodb://127.0.0.1:{self.mongo.port}/", "health_interval": "1s"},
            "log": {"level": "warn", "format": "json"},
        }

    def start_nexus(self, name: str = "nexus", pty_keeper: bool = True) -> tuple[Nexus, float]:
        config = self.nexus_config()
        config["ssh"]["pty_keeper"] = pty_keeper
        n = Nexus(self.work / name, config, start=False, binary=NEXUS)
        t0 = time.perf_counter()
        n.start()
        wait_until(lambda: n.status("/ready") == 200, 30, "nexus /ready")
        return n, time.perf_counter() - t0

    def start_ssh_forward(self) -> tuple[Proc, int]:
        port = free_port()
        proc = Proc(["ssh", "-N", "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                     "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=5", "-i", str(self.key),
                     "-p", str(self.sshd.port), "-L", f"127.0.0.1:{port}:127.0.0.1:{self.mongo.port}",
                     f"{current_user()}@{self.sshd.host}"], self.work / f"ssh-L-{port}.log")
        wait_until(lambda: port_open(port), 10, "ssh -L")
        return proc, port

    def start_official(self, forward_port: int) -> tuple[Proc, int, float]:
        port = free_port()
        env = {**os.environ, "MDB_MCP_CONNECTION_STRING": f"mongodb://127.0.0.1:{forward_port}/",
               "MDB_MCP_TELEMETRY": "disabled", "DO_NOT_TRACK": "1", "MDB_MCP_READ_ONLY": "true"}
        t0 = time.perf_counter()
        proc = Proc(["node", str(OFFICIAL), "--transport", "http", "--httpHost", "127.0.0.1", "--httpPort",
                     str(port), "--loggers", "stderr"], self.work / f"official-{port}.log", env=env)
        wait_until(lambda: port_open(port), 60, "the official server to listen", on_timeout=proc.text)
        return proc, port, time.perf_counter() - t0

    # --- measurements -----------------------------------------------------------------------------------------

    def tool_latency(self, nexus: Nexus, official_port: int) -> dict:
        out: dict = {}
        contenders = {"nexus": nexus.mcp_url, "official": f"http://127.0.0.1:{official_port}/mcp"}
        for tool, (arguments, expect) in TOOLS.items():
            body = self.work / f"{tool}.json"
            body.write_text(json.dumps(call_body(tool, arguments)))
            headers = ["--header", "MCP-Protocol-Version: 2026-07-28", "--header", "Mcp-Method: tools/call",
                       "--header", f"Mcp-Name: {tool}"]
            for c in CONCURRENCY:
                runs: dict[str, list] = {k: [] for k in contenders}
                for rep in range(self.reps):
                    order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
                    for name in order:
                        r = loadgen(["--url", contenders[name], "--body", str(body), *headers, "--concurrency",
                                     str(c), "--duration", self.duration, "--warmup", "1",
                                     "--expect", expect.replace("\\", "")])
                        runs[name].append(r)
                floor = [loadgen(["--mongo", f"mongodb://127.0.0.1:{nexus.forward_port}/?directConnection=true",
                                  "--op", tool, "--concurrency", str(c), "--duration", self.duration,
                                  "--warmup", "1"]) for _ in range(self.reps)]
                runs["driver-floor"] = floor
                out.setdefault(tool, {})[str(c)] = {k: summarize(v) for k, v in runs.items()}
                line = "  ".join(f"{k} p50 {out[tool][str(c)][k]['p50_ms']:.2f} ms {out[tool][str(c)][k]['rps']:.0f}/s"
                                 f" err {out[tool][str(c)][k]['errors']}" for k in runs)
                print(f"{tool:17} c={c:<2} {line}", flush=True)
        return out

    def peak_rss_under_load(self, nexus: Nexus, official: Proc, official_port: int) -> dict:
        body = self.work / "find.json"
        headers = ["--header", "MCP-Protocol-Version: 2026-07-28", "--header", "Mcp-Method: tools/call",
                   "--header", "Mcp-Name: find"]
        out = {}
        for name, url, pid, tree in [("nexus", nexus.mcp_url, nexus.proc.pid, False),
                                     ("official", f"http://127.0.0.1:{official_port}/mcp", official.pid, True)]:
            sampler = Sampler(pid, tree)
            loadgen(["--url", url, "--body", str(body), *headers, "--concurrency", "32", "--duration", "5"])
            out[name] = sampler.stop()
        return out

    def tunnel(self, nexus: Nexus, ssh_port: int) -> dict:
        plain, _ = self.start_nexus("nexus-no-keeper", pty_keeper=False)
        targets = {"direct": self.mongo.port, "nexus": nexus.forward_port, "nexus, keeper off": plain.forward_port,
                   "ssh -L": ssh_port}
        out: dict = {k: {"find_one_ms": [], "bulk_s": []} for k in targets}
        for rep in range(self.reps):
            order = list(targets) if rep % 2 == 0 else list(reversed(targets))
            for name in order:
                with pymongo.MongoClient(f"mongodb://127.0.0.1:{targets[name]}/", directConnection=True) as c:
                    c.admin.command("ping")
                    t0 = time.perf_counter()
                    for i in range(1000):
                        c.bulk.docs.find_one({"i": i})
                    out[name]["find_one_ms"].append((time.perf_counter() - t0))
                    t0 = time.perf_counter()
                    n = sum(1 for _ in c.bulk.docs.find({}))
                    assert n == 20_000, n
                    out[name]["bulk_s"].append(time.perf_counter() - t0)
        plain.stop()
        summary = {k: {"find_one_ms": statistics.median(v["find_one_ms"]),
                       "bulk_s": statistics.median(v["bulk_s"])} for k, v in out.items()}
        for k, v in summary.items():
            print(f"tunnel {k:17} 1000×find_one {v['find_one_ms']:.3f} ms each  bulk 20k×1KB {v['bulk_s']:.2f} s",
                  flush=True)
        return summary

    def healing(self) -> dict:
        out = {"kill_detect_ms": [], "freeze_detect_ms": [], "ready_after_return_ms": []}
        for rep in range(self.reps):
            n, _ = self.start_nexus(f"healing-{rep}")
            self.sshd.kill()
            t0 = time.perf_counter()
            wait_until(lambda: n.status("/ready") == 503, 10, "kill detected", interval=0.005)
            out["kill_detect_ms"].append((time.perf_counter() - t0) * 1e3)
            self.sshd.start()
            t0 = time.perf_counter()
            wait_until(lambda: n.status("/ready") == 200, 20, "ready again", interval=0.005)
            out["ready_after_return_ms"].append((time.perf_counter() - t0) * 1e3)
            frozen = self.sshd.freeze_sessions()
            t0 = time.perf_counter()
            wait_until(lambda: n.status("/ready") == 503, 15, "freeze detected", interval=0.01)
            out["freeze_detect_ms"].append((time.perf_counter() - t0) * 1e3)
            self.sshd.thaw(frozen)
            n.stop()
        summary = {k: statistics.median(v) for k, v in out.items()}
        print(f"healing: {json.dumps({k: round(v) for k, v in summary.items()})}", flush=True)
        return summary

    def run(self) -> dict:
        nexus, nexus_spawn = self.start_nexus()
        time.sleep(2)
        nexus_idle = rss_kib(nexus.proc.pid)
        ssh_proc, ssh_port = self.start_ssh_forward()
        official, official_port, official_spawn = self.start_official(ssh_port)
        time.sleep(3)
        official_idle = rss_kib(official.pid, tree=True)
        print(f"idle RSS: nexus {nexus_idle / 1024:.1f} MiB, official {official_idle / 1024:.1f} MiB; "
              f"spawn→ready: nexus {nexus_spawn * 1e3:.0f} ms, official {official_spawn * 1e3:.0f} ms", flush=True)
        spawns = {"nexus": [nexus_spawn], "official": [official_spawn]}
        self.results["tools"] = self.tool_latency(nexus, official_port)
        self.results["rss_32_kib"] = self.peak_rss_under_load(nexus, official, official_port)
        self.results["rss_idle_kib"] = {"nexus": nexus_idle, "official": official_idle}
        self.results["tunnel"] = self.tunnel(nexus, ssh_port)
        official.stop()
        nexus.stop()
        for _ in range(self.reps + 1):
            n, t = self.start_nexus("spawn")
            spawns["nexus"].append(t)
            n.stop()
            o, _, t = self.start_official(ssh_port)
            spawns["official"].append(t)
            o.stop()
        self.results["spawn_to_ready_ms"] = {k: statistics.median(v) * 1e3 for k, v in spawns.items()}
        self.results["healing"] = self.healing()
        ssh_proc.stop()
        return self.results

    def close(self):
        self.sshd.kill()
        self.mongo.stop()


def summarize(runs: list[dict]) -> dict:
    keys = ["p50_ms", "p95_ms", "p99_ms", "rps", "mean_ms"]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["errors"] = sum(r["errors"] for r in runs)
    out["count"] = sum(r["count"] for r in runs)
    errs = [r["sample_error"] for r in runs if r.get("sample_error")]
    if errs:
        out["sample_error"] = errs[0]
    return out


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), 0)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    sshv = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "node": node, "openssh": sshv,
            "nexus": subprocess.run([str(NEXUS), "--version"], capture_output=True, text=True).stdout.strip(),
            "official": "mongodb-mcp-server 3.0.4", "mongodb_peer": "nx-27017 0.8.1"}


def report(results: dict) -> str:
    t = results["tools"]
    lines = [f"# nexus-mcp benchmark — {results['started'][:10]}", "",
             "One run on one machine, contenders interleaved. Medians of the repetitions.", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), "",
             "## MCP tool calls (Streamable HTTP, stateless 2026-07-28, same request bodies)", "",
             "| tool | clients | nexus p50 / p95 / p99 ms | official p50 / p95 / p99 ms | driver floor p50 ms | "
             "nexus calls/s | official calls/s | p50 ratio nexus/official | p50 nexus/floor | throughput ×official |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for tool, by_c in t.items():
        for c, r in by_c.items():
            n, o, f = r["nexus"], r["official"], r["driver-floor"]
            lines.append(
                f"| {tool} | {c} | {n['p50_ms']:.2f} / {n['p95_ms']:.2f} / {n['p99_ms']:.2f} | "
                f"{o['p50_ms']:.2f} / {o['p95_ms']:.2f} / {o['p99_ms']:.2f} | {f['p50_ms']:.2f} | {n['rps']:.0f} | "
                f"{o['rps']:.0f} | {n['p50_ms'] / o['p50_ms']:.3f} | {n['p50_ms'] / f['p50_ms']:.2f} | "
                f"{n['rps'] / max(o['rps'], 1e-9):.1f} |")
    errors = {f"{tool}/{c}/{k}": v["errors"] for tool, by_c in t.items() for c, r in by_c.items()
              for k, v in r.items() if v["errors"]}
    lines += ["", f"Errors (non-200 or wrong answer): {errors or 'none'}", ""]
    tun = results["tunnel"]
    lines += ["## Tunnel (pymongo through each path to the same nx-27017)", "",
              "| path | 1000 × find_one (ms each) | bulk read 20 000 × 1 KB (s) | bulk vs direct |", "|---|---|---|---|"]
    for k, v in tun.items():
        lines.append(f"| {k} | {v['find_one_ms']:.3f} | {v['bulk_s']:.2f} | "
                     f"{tun['direct']['bulk_s'] / v['bulk_s']:.2f}× |")
    rss_i, rss_l, sp = results["rss_idle_kib"], results["rss_32_kib"], results["spawn_to_ready_ms"]
    lines += ["", "## Footprint", "", "| | nexus-mcp | official (node + ssh -L not counted) | ratio |", "|---|---|---|---|",
              f"| RSS idle | {rss_i['nexus'] / 1024:.1f} MiB | {rss_i['official'] / 1024:.1f} MiB | "
              f"{rss_i['nexus'] / rss_i['official']:.2f} |",
              f"| RSS peak, 32 clients | {rss_l['nexus'] / 1024:.1f} MiB | {rss_l['official'] / 1024:.1f} MiB | "
              f"{rss_l['nexus'] / rss_l['official']:.2f} |",
              f"| spawn → ready (nexus: /ready 200; official: listening) | {sp['nexus']:.0f} ms | "
              f"{sp['official']:.0f} ms | {sp['nexus'] / sp['official']:.3f} |"]
    h = results["healing"]
    lines += ["", "## Healing (keepalive 1 s × 2)", "",
              f"- killed sshd detected (/ready 503) in {h['kill_detect_ms']:.0f} ms",
              f"- SIGSTOPped session detected in {h['freeze_detect_ms']:.0f} ms",
              f"- ready again {h['ready_after_return_ms']:.0f} ms after sshd returned", ""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5))
    for ax, (tool, by_c) in zip(axes, results["tools"].items()):
        cs = [int(c) for c in by_c]
        for name, style in [("nexus", "o-"), ("official", "s-"), ("driver-floor", "^--")]:
            ax.plot(cs, [by_c[str(c)][name]["p50_ms"] for c in cs], style, label=f"{name} p50")
        ax.set_title(f"{tool}: p50 latency vs clients")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("ms (log)")
        ax.set_yscale("log")
        ax.set_xticks(cs)
        ax.legend()
    ax = axes[3]
    names = ["nexus", "official"]
    idle = [results["rss_idle_kib"][n] / 1024 for n in names]
    load = [results["rss_32_kib"][n] / 1024 for n in names]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], idle, 0.4, label="idle")
    ax.bar([i + 0.2 for i in x], load, 0.4, label="32 clients")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("RSS MiB")
    ax.set_title("memory")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def soak(work: Path, minutes: float) -> None:
    b = Bench(work, quick=True)
    try:
        nexus, _ = b.start_nexus("soak")
        body = work / "find.json"
        body.write_text(json.dumps(call_body("find", TOOLS["find"][0])))
        headers = ["--header", "MCP-Protocol-Version: 2026-07-28", "--header", "Mcp-Method: tools/call",
                   "--header", "Mcp-Name: find"]
        start_rss = rss_kib(nexus.proc.pid)
        slices, errors = [], 0
        deadline = time.time() + minutes * 60
        while time.time() < deadline:
            r = loadgen(["--url", nexus.mcp_url, "--body", str(body), *headers, "--concurrency", "50",
                         "--duration", "30", "--warmup", "0", "--expect", '"status"'])
            errors += r["errors"]
            slices.append({"t": round(time.time() - (deadline - minutes * 60)), "p99_ms": r["p99_ms"],
                           "rps": r["rps"], "rss_mib": rss_kib(nexus.proc.pid) / 1024, "errors": r["errors"]})
            print(json.dumps(slices[-1]), flush=True)
        end_rss = rss_kib(nexus.proc.pid)
        # Growth is measured from the first loaded slice (steady state), not from the idle process.
        loaded = slices[0]["rss_mib"] * 1024
        growth = (end_rss - loaded) / loaded * 100
        summary = {"minutes": minutes, "errors": errors, "rss_idle_mib": start_rss / 1024,
                   "rss_first_slice_mib": loaded / 1024, "rss_end_mib": end_rss / 1024, "rss_growth_pct": growth,
                   "slices": slices}
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"soak-{dt.date.today()}.json"
        out.write_text(json.dumps(summary, indent=2))
        print(f"soak: {errors} errors, RSS idle {start_rss / 1024:.1f}, loaded {loaded / 1024:.1f} → "
              f"{end_rss / 1024:.1f} MiB ({growth:+.1f} % under load); {out}")
        nexus.stop()
    finally:
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repetition, shorter runs (smoke test)")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="soak test instead of the benchmark")
    args = parser.parse_args()
    for path, hint in [(NEXUS, "cargo build --release"), (LOADGEN, "cargo build --release -p loadgen"),
                       (OFFICIAL, "npm ci --prefix bench/official")]:
        if not path.exists():
            sys.exit(f"{path} is missing: run `{hint}` (make bench does)")
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    if args.soak:
        soak(work, args.soak)
        return
    b = Bench(work, args.quick)
    try:
        results = b.run()
    finally:
        b.close()
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / str(dt.date.today())
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    text = report(results)
    stem.with_suffix(".md").write_text(text + f"\n![latency and memory]({stem.name}.png)\n")
    chart(results, stem.with_suffix(".png"))
    print(f"\nwrote {stem}.md, .json, .png")


if __name__ == "__main__":
    main()
