"""README.md's example commands, run as the README writes them (taken from the README's text, so it cannot rot): the
MCP Inspector CLI commands of its ```bash blocks, against a real nexus-mcp through the shared stack.

The Inspector is the one pinned in tests/node (package.json + lockfile, installed by `make deps`); the commands run
with cwd=tests/node, where `npx -y @modelcontextprotocol/inspector@0.15.0` resolves that local install. The npm
registry is pointed at a closed port and the npm cache at an empty directory, so a command that tried to download
anything would fail: the test proves the local resolution instead of assuming it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest

from support import REPO, free_port
from support.tsclient import NODE_DIR

README = REPO / "README.md"
README_URL = "http://127.0.0.1:3000/mcp"  # where the README's examples point; replaced by the test server's URL
INSPECTOR = "@modelcontextprotocol/inspector"
READ_TOOLS = {"list-databases", "list-collections", "find", "aggregate", "count", "distinct", "collection-schema",
              "collection-indexes", "collection-storage-size", "db-stats", "explain"}


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, re.S | re.M)


def commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", block)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def inspector_commands(markdown: str) -> list[list[str]]:
    return [argv for block in bash_blocks(markdown) for argv in commands(block)
            if argv[0] == "npx" and any(a.startswith(INSPECTOR) for a in argv)]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def pinned_inspector() -> str:
    return json.loads((NODE_DIR / "package.json").read_text())["dependencies"][INSPECTOR]


@pytest.fixture(scope="module")
def examples() -> list[list[str]]:
    found = inspector_commands(README.read_text())
    methods = [option(argv, "--method") for argv in found]
    assert "tools/list" in methods and "tools/call" in methods, f"README's Inspector examples changed: {found}"
    return found


@pytest.fixture(scope="module")
def nexus(shared_stack):
    n = shared_stack.nexus("readme")
    n.wait_ready()
    return n


def run_offline(argv: list[str], tmp_path) -> subprocess.CompletedProcess:
    """Runs `argv` in tests/node with no reachable npm registry and an empty npm cache."""
    cache = tmp_path / "npm-cache"
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    env.update(npm_config_registry=f"http://127.0.0.1:{free_port()}/", npm_config_cache=str(cache),
               npm_config_update_notifier="false", npm_config_fetch_retries="0")
    p = subprocess.run(argv, cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{shlex.join(argv)} exited with {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    npx_installs = cache / "_npx"
    assert not npx_installs.exists() or not any(npx_installs.iterdir()), \
        f"npx installed a package instead of using tests/node's: {list(npx_installs.iterdir())}"
    return p


def with_url(argv: list[str], url: str) -> list[str]:
    assert README_URL in argv, f"the README's example no longer targets {README_URL}: {shlex.join(argv)}"
    return [url if a == README_URL else a for a in argv]


def test_every_npx_in_the_readme_runs_without_a_prompt_and_pins_the_tested_inspector(examples):
    text = README.read_text()
    without_yes = [m.group(0) for m in re.finditer(r"\bnpx\b(?! -y\b)[^\n]*", text)]
    assert without_yes == [], f"npx without -y stops at an install prompt: {without_yes}"
    for argv in examples:
        spec = next(a for a in argv if a.startswith(INSPECTOR))
        assert spec == f"{INSPECTOR}@{pinned_inspector()}", \
            f"the README runs {spec}, the tests pin {INSPECTOR} {pinned_inspector()} in tests/node"


def test_the_readme_tools_list_example(examples, nexus, tmp_path):
    [argv] = [a for a in examples if option(a, "--method") == "tools/list"]
    out = json.loads(run_offline(with_url(argv, nexus.mcp_url), tmp_path).stdout)
    assert {t["name"] for t in out["tools"]} == READ_TOOLS


def test_the_readme_find_example(examples, nexus, mongo, tmp_path):
    [argv] = [a for a in examples if option(a, "--method") == "tools/call" and option(a, "--tool-name") == "find"]
    args = dict(a.split("=", 1) for a in (argv[i + 1] for i, x in enumerate(argv) if x == "--tool-arg"))
    out = json.loads(run_offline(with_url(argv, nexus.mcp_url), tmp_path).stdout)
    assert not out.get("isError"), out
    docs = out["structuredContent"]["documents"]
    assert len(docs) == int(args["limit"]) == 5
    expected = mongo[args["database"]][args["collection"]].find().limit(int(args["limit"]))
    assert [d["orderNo"] for d in docs] == [d["orderNo"] for d in expected]
    assert "Found 5 documents" in out["content"][0]["text"]
