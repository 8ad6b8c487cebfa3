#!/usr/bin/env python3
"""`make bench-routes`: the two routes of `tunnel.mode` side by side, and failover on a replica set (issue 11).

Everything runs on this machine on loopback, in one run: an OpenSSH sshd bastion and one nx-27017 with the shop
sample data, as in bench/bench.py.

1. **Routes.** Two nexus-mcp processes (the release build) that differ only in `tunnel.mode` — `forward` (the fixed
   local forward) and `socks` (the in-process SOCKS5 route: every driver connection is a SOCKS5 handshake, then an
   SSH channel to the host the driver names) — in front of the same single member (nx-27017 itself). The same
   stateless 2026-07-28 `tools/call` (`find` limit 10 on an indexed filter, and `list-collections`) from the Rust
   load generator and from the Python `mcp` SDK, 1 and 8 closed-loop clients. Rounds alternate the order
   (forward, socks / socks, forward); the socks/forward p50 ratio is taken per round (same minute of machine noise)
   and its median is the reported ratio.
2. **Failover.** nexus-mcp (read_only = false, the shipped mongo defaults, `tunnel.mode` auto → SOCKS) in front of
   the emulated 3-member replica set of tests/support/rs_peer.py over the same nx-27017. One MCP client (the Python
   SDK) runs a steady loop of `insert-many` calls while the harness steps the primary down K times; for each
   step-down: the time from `step_down()` returning to the acknowledgement of the first insert *issued after it*
   (which must reach the new primary: the old one refuses writes), whether any call failed, and how many write
   attempts the old primary refused (the driver's retryable-write retries). Then the same with
   `heartbeatFrequencyMS=500` in the URI. Afterwards every acknowledged insert must be in the store exactly once.

Writes bench/results/<date>-routes.md and .json (--quick: into the work directory, with debug builds allowed;
numbers meaningless). BENCHMARKS.md's prose section is written by hand from the .md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import LOADGEN, NEXUS, REPO, RESULTS, Bench, summarize  # noqa: E402
from sample_data import seed  # noqa: E402
from support import MongoWire, Nexus, Sshd, keygen  # noqa: E402
from support.mcpclient import acall, session  # noqa: E402
from support.procs import wait_until  # noqa: E402
from support.replset import ReplSet  # noqa: E402

ROUTES = ["forward", "socks"]
CLIENTS = {"loadgen": "Rust `bench/loadgen` (one keep-alive HTTP/1.1 connection per virtual client, raw JSON-RPC)",
           "py-sdk": "Python `mcp` SDK (`mcp.Client` per virtual client, mode auto → 2026-07-28 stateless)"}
ROUTE_TOOLS = ["find", "list-collections"]
LEVELS = [1, 8]
# Seconds between two step-downs, in turn. The driver checks a server no sooner than 500 ms after its previous check
# (and every monitor checked at once after the previous step-down), so the short pauses show the worst case
# (back-to-back elections, or a periodic heartbeat just before the step-down) and the long ones the usual case.
PAUSES = [2.5, 0.2, 1.5, 0.4, 3.0, 0.1, 2.0, 0.3, 1.0, 0.45]
SHORT_PAUSE_S = 0.5


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


class RoutesBench(Bench):
    """Reuses bench.py's contender config and client runners; its own, lighter setup (no bulk data, no official
    server)."""

    def __init__(self, work: Path, quick: bool, nexus_bin: Path, loadgen_bin: Path, rounds: int, stepdowns: int):
        self.work, self.quick, self.nexus_bin, self.loadgen_bin = work, quick, nexus_bin, loadgen_bin
        self.rounds, self.stepdowns = rounds, stepdowns
        self.duration, self.warmup = (0.6, 0.2) if quick else (2.0, 0.5)
        self.key = keygen(work)
        self.sshd = Sshd(work / "sshd", authorized_keys=[self.key])
        self.mongo = MongoWire(work / "mongo")
        with self.mongo.client() as c:
            self.counts = seed(c, scale=1.0)
        self.known_hosts = work / "known_hosts"
        self.known_hosts.write_text(self.sshd.known_hosts_line())
        self.procs = []
        self.results: dict = {"machine": machine(nexus_bin), "quick": quick,
                              "started": dt.datetime.now(dt.timezone.utc).isoformat(), "loadavg_1m": []}

    def note_load(self, what: str) -> None:
        self.results["loadavg_1m"].append([round(time.time()), what, loadavg()])

    # --- 1. forward vs socks on one member -------------------------------------------------------------------

    def start_route(self, mode: str) -> Nexus:
        config = self.nexus_config()
        config["tunnel"] = {"mode": mode}
        n = Nexus(self.work / f"nexus-{mode}", config, start=False, binary=self.nexus_bin)
        n.start()
        wait_until(lambda: n.status("/ready") == 200, 30, f"nexus ({mode}) /ready", on_timeout=n.log_tail)
        return n

    def routes(self, clients: list[str], tools: list[str]) -> dict:
        nexuses = {mode: self.start_route(mode) for mode in ROUTES}
        self.note_load("routes: start")
        cells: dict = {}
        for client in clients:
            for tool in tools:
                rounds: list[dict] = []
                for r in range(self.rounds):
                    order = ROUTES if r % 2 == 0 else list(reversed(ROUTES))
                    runs = {}
                    for mode in order:
                        out = self.client_run(client, "stateless", {"url": nexuses[mode].mcp_url}, LEVELS,
                                              self.duration, self.warmup, tool=tool)
                        if "failed" in out:
                            raise RuntimeError(f"{client} {tool} {mode}: {out['failed']}")
                        runs[mode] = out["by_c"]
                    rounds.append({"order": order, "loadavg_1m": loadavg(), "runs": runs})
                cells.setdefault(client, {})[tool] = cell = summarize_cell(rounds)
                for c in LEVELS:
                    v = cell[str(c)]
                    print(f"{client:7} {tool:16} c={c}  forward p50 {v['forward']['p50_ms']:.2f} ms  "
                          f"socks p50 {v['socks']['p50_ms']:.2f} ms  ratio/round "
                          f"{' '.join(f'{x:.2f}' for x in v['ratio_p50_per_round'])} → median "
                          f"{v['ratio_p50']:.3f}  (load {rounds[-1]['loadavg_1m']})", flush=True)
        self.note_load("routes: end")
        routes_seen = {mode: {route: n.metric(f'nexus_tunnel_channels_opened_total{{route="{route}"}}')
                              for route in ROUTES} for mode, n in nexuses.items()}
        for n in nexuses.values():
            n.stop()
        # Sanity: each process used its own route only (a socks process serves the fixed forward too, unused here).
        seen = routes_seen
        if seen["forward"]["socks"] or not seen["forward"]["forward"] or not seen["socks"]["socks"]:
            raise RuntimeError(f"a process did not use the route it was meant to: {routes_seen}")
        return {"cells": cells, "channels_opened": routes_seen, "duration_s": self.duration, "warmup_s": self.warmup,
                "rounds": self.rounds}

    # --- 2. failover ----------------------------------------------------------------------------------------

    def failover(self) -> dict:
        rs = ReplSet(self.work / "rs", mongo=self.mongo)
        self.procs.append(rs.proc)
        out = {}
        try:
            for name, options in [("default", {}), ("heartbeat-500ms", {"heartbeatFrequencyMS": 500})]:
                config = self.nexus_config()
                config["mongo"] = {"uri": rs.uri(**options)}  # the shipped defaults for everything else
                config["mcp"] = {"read_only": False}
                n = Nexus(self.work / f"nexus-failover-{name}", config, start=False, binary=self.nexus_bin)
                n.start()
                wait_until(lambda: n.status("/ready") == 200, 30, "nexus (replica set) /ready", on_timeout=n.log_tail)
                self.note_load(f"failover {name}: start")
                try:
                    out[name] = self.failover_run(n, rs, name)
                finally:
                    n.stop()
                self.note_load(f"failover {name}: end")
        finally:
            rs.close()
        return out

    def failover_run(self, nexus: Nexus, rs: ReplSet, name: str) -> dict:
        collection = f"events_{name.replace('-', '_')}"
        calls: list[dict] = []  # {"seq", "start", "end", "ok", "error"}
        steps: list[dict] = []
        stop = asyncio.Event()

        async def insert_loop():
            async with session(nexus.mcp_url) as c:
                seq = 0
                while not stop.is_set():
                    seq += 1
                    start = time.monotonic()
                    r = await acall(c, "insert-many", {"database": "failover", "collection": collection,
                                                       "documents": [{"seq": seq, "n": i} for i in range(5)]})
                    calls.append({"seq": seq, "start": start, "end": time.monotonic(), "ok": not r.is_error,
                                  "error": r.text[:300] if r.is_error else None})

        async def step_downs():
            await asyncio.sleep(1.0 if self.quick else 3.0)  # warm-up: pool connections, steady loop
            for k in range(self.stepdowns):
                await asyncio.sleep(PAUSES[k % len(PAUSES)])
                before = await asyncio.to_thread(rs.stats)
                old = before["primary"]
                called = time.monotonic()
                new = await asyncio.to_thread(rs.step_down)
                returned = time.monotonic()
                steps.append({"from": old, "to": new, "called": called,
                              "returned": returned,
                              "refused_before": before["members"][old]["writes_refused"]})
            await asyncio.sleep(1.0 if self.quick else 2.0)
            stop.set()

        async def scenario():
            loop = asyncio.create_task(insert_loop())
            try:
                await step_downs()
            finally:
                stop.set()
                await loop

        with self.mongo.client() as c:
            c.failover.drop_collection(collection)
        asyncio.run(scenario())
        after = rs.stats()

        events = []
        for i, s in enumerate(steps):
            window_end = steps[i + 1]["called"] if i + 1 < len(steps) else float("inf")
            issued_after = [c for c in calls if c["start"] >= s["returned"]]
            first_ok = next((c for c in issued_after if c["ok"]), None)
            in_flight = next((c for c in calls if c["start"] < s["returned"] <= c["end"]), None)
            failed = [c for c in calls if not c["ok"] and s["called"] <= c["end"] < window_end]
            events.append({
                "from": s["from"], "to": s["to"],
                "since_previous_s": round(s["called"] - steps[i - 1]["returned"], 2) if i else None,
                "step_down_call_ms": round((s["returned"] - s["called"]) * 1e3, 2),
                "recovered_ms": round((first_ok["end"] - s["returned"]) * 1e3, 2) if first_ok else None,
                "first_issued_after_took_ms": round((issued_after[0]["end"] - issued_after[0]["start"]) * 1e3, 2)
                if issued_after else None,
                "in_flight_took_ms": round((in_flight["end"] - in_flight["start"]) * 1e3, 2) if in_flight else None,
                "calls_failed": len(failed), "errors": [c["error"] for c in failed][:3],
            })
        # The old primary's refused writes are counted per member; attribute them to the step-down that demoted it.
        for i, s in enumerate(steps):
            next_before = next((t["refused_before"] for t in steps[i + 1:] if t["from"] == s["from"]), None)
            total = next_before if next_before is not None else after["members"][s["from"]]["writes_refused"]
            events[i]["old_primary_refused_writes"] = total - s["refused_before"] if s["from"] is not None else None

        with self.mongo.client() as c:
            stored = [(d["seq"], d["n"]) for d in c.failover[collection].find({}, {"_id": 0, "seq": 1, "n": 1})]
        acknowledged = {c["seq"] for c in calls if c["ok"]}
        failed_seqs = {c["seq"] for c in calls if not c["ok"]}
        stored_seqs = [s for s, _ in stored]
        integrity = {
            "calls": len(calls), "acknowledged": len(acknowledged), "failed": len(failed_seqs),
            "documents_stored": len(stored), "duplicates": len(stored) - len(set(stored)),
            "acknowledged_missing": len([s for s in acknowledged if stored_seqs.count(s) != 5]),
            "failed_but_stored": len([s for s in failed_seqs if s in set(stored_seqs)]),
            "stored_not_issued": len(set(stored_seqs) - acknowledged - failed_seqs),
        }
        steady = [(c["end"] - c["start"]) * 1e3 for c in calls if c["ok"]]
        recovered = [e["recovered_ms"] for e in events if e["recovered_ms"] is not None]
        short = [e for e in events if e["since_previous_s"] is not None and e["since_previous_s"] < SHORT_PAUSE_S]
        groups = {"isolated": [e for e in events if e not in short], "back_to_back": short}
        by_group = {g: {"n": len(es), "median_ms": round(statistics.median(x["recovered_ms"] for x in es), 2),
                        "max_ms": round(max(x["recovered_ms"] for x in es), 2)}
                    for g, es in groups.items() if es and all(x["recovered_ms"] is not None for x in es)}
        summary = {
            "uri_options": name, "events": events, "integrity": integrity,
            "recovered_ms_median": round(statistics.median(recovered), 2) if recovered else None,
            "recovered_ms_max": round(max(recovered), 2) if recovered else None,
            "recovered_by_gap": by_group,
            "calls_failed_total": sum(e["calls_failed"] for e in events),
            "insert_p50_ms": round(statistics.median(steady), 2) if steady else None,
            "primary_changes": nexus.metric("nexus_mongo_primary_changes_total"),
            "same_process": nexus.proc.alive(),
        }
        print(f"failover {name:16} recovered median {summary['recovered_ms_median']} ms, max "
              f"{summary['recovered_ms_max']} ms over {len(events)} step-downs; failed calls "
              f"{summary['calls_failed_total']}; integrity {integrity}", flush=True)
        return summary

    def close(self):
        for p in self.procs:
            p.stop()
        self.sshd.kill()
        self.mongo.stop()


def summarize_cell(rounds: list[dict]) -> dict:
    """Per concurrency level: each route's medians over rounds, the per-round socks/forward p50 ratios and their
    median."""
    out = {}
    for c in LEVELS:
        per_route = {mode: [r["runs"][mode][str(c)] for r in rounds] for mode in ROUTES}
        ratios = [r["runs"]["socks"][str(c)]["p50_ms"] / r["runs"]["forward"][str(c)]["p50_ms"] for r in rounds]
        ratios99 = [r["runs"]["socks"][str(c)]["p99_ms"] / r["runs"]["forward"][str(c)]["p99_ms"] for r in rounds]
        out[str(c)] = {**{mode: summarize(v) for mode, v in per_route.items()},
                       "p50_per_round": {mode: [round(v["p50_ms"], 3) for v in per_route[mode]] for mode in ROUTES},
                       "ratio_p50_per_round": [round(x, 3) for x in ratios],
                       "ratio_p50": round(statistics.median(ratios), 3),
                       "ratio_p99": round(statistics.median(ratios99), 3),
                       "loadavg_1m": [r["loadavg_1m"] for r in rounds]}
    return out


def machine(nexus_bin: Path) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    from importlib.metadata import version  # noqa: PLC0415
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release,
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "nexus": subprocess.run([str(nexus_bin), "--version"], capture_output=True, text=True).stdout.strip()
            + ("" if nexus_bin == NEXUS else f" ({nexus_bin})"),
            "mongodb_driver": "mongodb (Rust) " + cargo_lock_version("mongodb"),
            "mongodb_peer": "nx-27017 0.8.1; replica set: tests/support/rs_peer.py", "python_mcp": version("mcp")}


def cargo_lock_version(name: str) -> str:
    text = (REPO / "Cargo.lock").read_text()
    marker = f'name = "{name}"\nversion = "'
    i = text.find(marker)
    return text[i + len(marker):text.index('"', i + len(marker))] if i >= 0 else "?"


# --- report ------------------------------------------------------------------------------------------------------

def report(results: dict) -> str:
    m = results["machine"]
    loads = [x[2] for x in results["loadavg_1m"]] + [
        v for cell in results["routes"]["cells"].values() for t in cell.values() for c in t.values()
        for v in c["loadavg_1m"]]
    rt = results["routes"]
    lines = [
        f"# nexus-mcp routes and failover — {results['started'][:10]}"
        f"{' (--quick: numbers meaningless)' if results['quick'] else ''}", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, shared with other work: 1-minute load average "
        f"{min(loads):.2f}–{max(loads):.2f} (median {statistics.median(loads):.2f}) during the run. "
        f"{m['nexus']}; {m['mongodb_driver']}; {m['openssh']}; Python mcp {m['python_mcp']}; {m['mongodb_peer']}.",
        f"Whole run: {results['wall_s'] / 60:.1f} min. Raw numbers: the `.json` beside this file.", "",
    ]
    if rt["cells"]:
        lines += [
            "## Routes: fixed forward vs SOCKS5 (one member, same process config but `tunnel.mode`)", "",
            f"Stateless 2026-07-28 `tools/call`, {rt['rounds']} rounds alternating the order (forward, socks / "
            f"socks, forward), each run {rt['warmup_s']} s warm-up + {rt['duration_s']} s measured per concurrency "
            "level. p50/p99: median over rounds; ratio: socks/forward p50 per round, then the median of those.", "",
            "| client | tool | clients | forward p50 / p99 ms | socks p50 / p99 ms | socks/forward p50 per round | "
            "**median ratio p50** | ratio p99 | calls measured fwd / socks | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    for client, tools in rt["cells"].items():
        for tool, cell in tools.items():
            for c, v in cell.items():
                f, s = v["forward"], v["socks"]
                lines.append(
                    f"| {client} | `{tool}` | {c} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | "
                    f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f} | "
                    f"{' '.join(f'{x:.2f}' for x in v['ratio_p50_per_round'])} | **{v['ratio_p50']:.3f}** | "
                    f"{v['ratio_p99']:.2f} | {f['count']} / {s['count']} | {f['errors'] + s['errors']} |")
    ch = rt["channels_opened"]
    if ch:
        lines += ["", f"SSH channels opened by route (`nexus_tunnel_channels_opened_total`): forward process "
                      f"{ch['forward']}, socks process {ch['socks']} — each used only its own route."]
    if results["failover"]:
        lines += ["", "## Failover (3-member emulated replica set, `insert-many` loop through the Python SDK)", "",
                  "Recovery = from `step_down()` returning to the acknowledgement of the first `insert-many` issued "
                  "after it (the old primary refuses writes, so that insert was executed by the new primary). "
                  "Refused = write attempts the old primary answered with NotWritablePrimary (10107) after the "
                  "step-down: each is a driver retry of a retryable write, invisible to the MCP client.", ""]
    for name, f in results["failover"].items():
        integ = f["integrity"]
        lines += [f"### URI options: {name}", "",
                  f"Recovery median **{f['recovered_ms_median']} ms**, max **{f['recovered_ms_max']} ms** over "
                  f"{len(f['events'])} step-downs; failed calls: {f['calls_failed_total']}; steady insert p50 "
                  f"{f['insert_p50_ms']} ms; primary changes seen by nexus-mcp: {f['primary_changes']:.0f}; "
                  f"same process throughout: {f['same_process']}.", "",
                  "By the time since the previous step-down: " + "; ".join(
                      f"{g.replace('_', '-')} ({'<' if g == 'back_to_back' else '≥'} {SHORT_PAUSE_S} s) "
                      f"n={v['n']}, median {v['median_ms']} ms, max {v['max_ms']} ms"
                      for g, v in f["recovered_by_gap"].items()) + ".", "",
                  f"Integrity: {integ['calls']} calls, {integ['acknowledged']} acknowledged, {integ['failed']} "
                  f"failed; {integ['documents_stored']} documents stored, {integ['duplicates']} duplicated, "
                  f"{integ['acknowledged_missing']} acknowledged inserts missing or incomplete.", "",
                  "| # | primary | s since the previous step-down | recovered ms | first insert after took ms | "
                  "in-flight insert took ms | "
                  "refused by old primary | failed calls |", "|---|---|---|---|---|---|---|---|"]
        for i, e in enumerate(f["events"], 1):
            since = e["since_previous_s"] if i > 1 else "—"
            lines.append(f"| {i} | {e['from']} → {e['to']} | {since} | {e['recovered_ms']} "
                         f"| {e['first_issued_after_took_ms']} "
                         f"| {e['in_flight_took_ms']} | {e['old_primary_refused_writes']} | {e['calls_failed']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, 2 rounds, 3 step-downs; writes into the "
                                                             "work directory (numbers meaningless)")
    parser.add_argument("--rounds", type=int, help="rounds per cell (default 8; --quick 2)")
    parser.add_argument("--stepdowns", type=int, help="step-downs per URI variant (default 10; --quick 3)")
    parser.add_argument("--nexus-bin", type=Path, default=NEXUS, help=f"default {NEXUS.relative_to(REPO)}")
    parser.add_argument("--loadgen-bin", type=Path, default=LOADGEN, help=f"default {LOADGEN.relative_to(REPO)}")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="routes: a subset of " + ", ".join(CLIENTS))
    parser.add_argument("--tools", default=",".join(ROUTE_TOOLS), help="routes: a subset of " + ", ".join(ROUTE_TOOLS))
    parser.add_argument("--skip-routes", action="store_true", help="failover only")
    parser.add_argument("--skip-failover", action="store_true", help="routes only")
    args = parser.parse_args()
    nexus_bin, loadgen_bin = args.nexus_bin.resolve(), args.loadgen_bin.resolve()
    for path, hint in [(nexus_bin, "cargo build --release"), (loadgen_bin, "cargo build --release -p loadgen")]:
        if not path.exists():
            sys.exit(f"{path} is missing: run `{hint}`")
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-routes-"))
    print(f"work directory: {work}", flush=True)
    rounds = args.rounds or (2 if args.quick else 8)
    stepdowns = args.stepdowns or (3 if args.quick else 10)
    b = RoutesBench(work, args.quick, nexus_bin, loadgen_bin, rounds, stepdowns)
    t0 = time.perf_counter()
    try:
        b.results["routes"] = {"cells": {}, "channels_opened": {}, "rounds": 0, "duration_s": 0, "warmup_s": 0} \
            if args.skip_routes else b.routes(args.clients.split(","), args.tools.split(","))
        b.results["failover"] = {} if args.skip_failover else b.failover()
    finally:
        b.close()
    b.results["wall_s"] = round(time.perf_counter() - t0)
    partial = args.skip_routes or args.skip_failover or args.clients != ",".join(CLIENTS) \
        or args.tools != ",".join(ROUTE_TOOLS)
    out_dir = work if args.quick or partial else RESULTS  # a partial run never replaces the report
    stem = out_dir / f"{'quick-' if args.quick else ''}{dt.date.today()}-routes"
    stem.with_suffix(".json").write_text(json.dumps(b.results, indent=2))
    stem.with_suffix(".md").write_text(report(b.results))
    print(f"\nwrote {stem}.md and .json; whole run {b.results['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
