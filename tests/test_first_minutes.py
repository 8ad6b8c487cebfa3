"""The mistakes of a user's first minutes get an answer that names the cause: a MongoDB port the bastion cannot
reach, a port another process holds, `check` beside a running server."""

import time

import mcp

from support import call_tool, free_port
from support.mcpclient import acall, session
from support.nexus import BINARY

import asyncio


def _wrong_port_nexus(stack, **kwargs):
    """nexus-mcp whose mongo.uri names a port nothing listens on, as seen from the bastion."""
    port = free_port()
    return port, stack.nexus(mongo={"uri": f"mongodb://127.0.0.1:{port}/shop"}, **kwargs)


def test_a_wrong_mongodb_port_is_named_by_check(stack):
    port, nexus = _wrong_port_nexus(stack, start=False)
    result = nexus.run("check", timeout=30)
    assert result.returncode == 12, result.stdout + result.stderr
    mongodb = next(line for line in result.stdout.splitlines() if line.startswith("mongodb"))
    assert "FAILED" in mongodb and "SSH_FORWARD_REFUSED" in mongodb, mongodb
    assert f"127.0.0.1:{port}" in mongodb and "as seen from the bastion" in mongodb, mongodb
    assert "SystemOverloaded" not in result.stdout, "the driver's dump hides the cause"


def test_a_wrong_mongodb_port_is_named_by_ready_and_by_tool_errors(stack):
    port, nexus = _wrong_port_nexus(stack)
    target = f"127.0.0.1:{port}"

    def refused():
        status, body = nexus.get("/ready?verbose")
        mongodb = body["checks"]["mongodb"]
        return status == 503 and mongodb.get("class") == "SSH_FORWARD_REFUSED" and target in mongodb.get("detail", "")
    nexus.wait_until(refused, 15, "/ready?verbose to name the refused forward")
    status, body = nexus.get("/ready?verbose")
    assert "SSH_FORWARD_REFUSED" in body["startupError"] and target in body["startupError"], body
    status, plain = nexus.get("/ready")
    assert "detail" not in plain["checks"]["mongodb"], "details only when asked for"

    r = call_tool(nexus.mcp_url, "count", {"database": "shop", "collection": "orders"})
    assert r.is_error
    assert "SSH_FORWARD_REFUSED" in r.text and target in r.text and "starting (stage mongodb)" in r.text, r.text

    warnings = [l for l in nexus.log_lines() if l.get("message") == "tunnel: forward refused"]
    assert len(warnings) <= 1, f"a repeated refusal is logged at warn once, not {len(warnings)} times"


def test_over_stdio_a_failing_stage_is_answered_at_once(stack):
    port, nexus = _wrong_port_nexus(stack, start=False)
    params = mcp.StdioServerParameters(command=str(BINARY),
                                       args=["serve", "--transport", "stdio", "--config", str(nexus.config_path)],
                                       env=nexus.env)

    async def run():
        async with session(params) as c:
            first = await acall(c, "count", {"database": "shop", "collection": "orders"})
            # Once the stage has failed, calls do not wait for the startup timeout (10 s).
            started = time.monotonic()
            second = await acall(c, "count", {"database": "shop", "collection": "orders"})
            return first, second, time.monotonic() - started

    first, second, took = asyncio.run(run())
    assert first.is_error and second.is_error
    assert "SSH_FORWARD_REFUSED" in second.text and f"127.0.0.1:{port}" in second.text, second.text
    assert took < 5, f"a call waited {took:.1f} s for a stage that was already failing"


def test_check_works_beside_a_running_server(stack):
    nexus = stack.nexus()
    nexus.wait_ready()
    result = nexus.run("check", timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_busy_forward_port_is_retried_not_a_configuration_error(stack):
    first = stack.nexus("first")
    first.wait_ready()
    second = stack.nexus("second", tunnel={"local_listen": first.config["tunnel"]["local_listen"]})
    second.wait_until(lambda: "ADDRESS_IN_USE" in second.logs(), 15, "the busy port to be logged")
    assert second.proc.alive(), "a busy port at run time is retried, not fatal"
    status, body = second.get("/ready?verbose")
    assert status == 503 and "ADDRESS_IN_USE" in body["startupError"], body
    assert first.terminate() == 0
    second.wait_ready()


def test_a_busy_listen_address_has_its_own_exit_code(stack):
    first = stack.nexus("first")
    first.wait_ready()
    second = stack.nexus("second", server={"listen": first.config["server"]["listen"]}, start=False)
    result = second.run("serve", timeout=30)
    assert result.returncode == 69, result.stderr
    assert "ADDRESS_IN_USE" in result.stderr and first.config["server"]["listen"] in result.stderr
    assert "configuration error" not in result.stderr


def test_over_stdio_a_busy_forward_port_is_explained_not_a_hang(stack):
    first = stack.nexus("first")
    first.wait_ready()
    second = stack.nexus("second", start=False, tunnel={"local_listen": first.config["tunnel"]["local_listen"]})
    params = mcp.StdioServerParameters(command=str(BINARY),
                                       args=["serve", "--transport", "stdio", "--config", str(second.config_path)],
                                       env=second.env)

    async def run():
        async with session(params) as c:
            return await acall(c, "count", {"database": "shop", "collection": "orders"})

    r = asyncio.run(asyncio.wait_for(run(), 30))
    assert r.is_error and "ADDRESS_IN_USE" in r.text and "starting (stage tunnel)" in r.text, r.text
