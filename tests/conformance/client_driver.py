"""The hub as the client of the MCP conformance suite's client scenarios.

usage: client_driver.py URL   (the suite appends the scenario server's URL)

The suite runs this with MCP_CONFORMANCE_SCENARIO (the scenario's name) and, for some scenarios,
MCP_CONFORMANCE_CONTEXT (JSON: a pre-registered client's id and secret). AGENTHUB_BIN names the
hub binary. The driver starts a hub whose one server is URL, lets it connect, follows the
authorization URL headlessly when the hub asks for a sign-in (the suite's authorization server
redirects at once, to the hub's own callback), then lists the server's tools and calls each
through the REST relay, as a person with curl would. It exits 0 when the hub did its part; the
suite judges what reached its server.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DEADLINE_S = 20
NAME = "remote"


def say(*args):
    print("driver:", *args, file=sys.stderr, flush=True)


def request(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"error": text.decode(errors="replace")}


def sample(schema):
    """An argument value of the schema's type (the scenarios check what arrives, not its sense)."""
    if not isinstance(schema, dict):
        return "test"
    if "default" in schema:
        return schema["default"]
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }.get(kind, "test")


def arguments(tool, listed):
    """What a model would pass: a value of each parameter's type, or, where the parameter asks
    for another listed tool's inputSchema, that schema as the hub listed it."""
    schema = tool.get("inputSchema") or {}
    props = schema.get("properties") or {}
    schemas = {t.get("name"): t.get("inputSchema") for t in listed}
    args = {}
    for name, p in props.items():
        asked = re.search(r"inputSchema\b.* for (\S+?)[,.]? ", str(p.get("description", "")) + " ")
        if asked and asked.group(1) in schemas:
            args[name] = schemas[asked.group(1)]
        else:
            args[name] = sample(p)
    return args


def wait_status(base, wanted, deadline):
    status = None
    while time.monotonic() < deadline:
        code, server = request(base, "GET", f"/servers/{NAME}")
        status = server.get("status") if code == 200 else None
        if status in wanted:
            return server
        time.sleep(0.05)
    return {"status": status}


MAX_SIGN_INS = 4


def sign_in(base):
    """Follows the hub's authorization URL; False when there is none or the hub refused the callback."""
    code, auth = request(base, "GET", f"/servers/{NAME}/auth")
    if code != 200:
        say("no authorization URL:", code, auth)
        return False
    # The suite's authorization server redirects at once, to the hub's callback.
    try:
        with urllib.request.urlopen(auth["authorization_url"], timeout=30) as r:
            say("signed in:", r.status)
            return True
    except urllib.error.HTTPError as e:
        # The hub refused the callback (a wrong or missing iss, say): nothing to wait for.
        say("the sign-in ended with", e.code, e.read()[:300])
        return False


def use_tools(base, context):
    """Lists the tools and calls them (the scenario's own `toolCalls` when its context gives
    them, else each tool listed); True when every request succeeded."""
    code, listed = request(base, "POST", f"/mcp/{NAME}/tools/list", {})
    say("tools/list", code)
    ok = code == 200
    tools = (listed or {}).get("tools", []) if code == 200 else []
    calls = [(c["name"], c.get("arguments", {})) for c in context.get("toolCalls", [])]
    calls = calls or [(tool["name"], arguments(tool, tools)) for tool in tools]
    for name, args in calls:
        code, _ = request(base, "POST", f"/mcp/{NAME}/tools/call", {"name": name, "arguments": args})
        say("tools/call", name, code)
        ok = ok and code == 200
    return ok


def main():
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    hub_bin = os.environ["AGENTHUB_BIN"]
    entry = {"type": "http", "url": url, "auto_start": True}
    oauth = {k: context[k] for k in ("client_id", "client_secret") if k in context}
    if oauth:
        entry["oauth"] = oauth
    with tempfile.TemporaryDirectory(prefix="agenthub-conformance-") as home:
        config = os.path.join(home, "config")
        os.makedirs(config)
        with open(os.path.join(config, "mcp-servers.json"), "w") as f:
            json.dump({"servers": {NAME: entry}}, f)
        # Nobody watches the dashboard here: a server's question to a person goes unanswered
        # after a second (the hub declines it), not after the suite's deadline.
        env = dict(
            os.environ,
            AGENTHUB_LOG_LEVEL=os.environ.get("AGENTHUB_LOG_LEVEL", "debug"),
            AGENTHUB_ELICITATION_WAIT_S=os.environ.get("AGENTHUB_ELICITATION_WAIT_S", "1"),
        )
        # The suite's own Client ID Metadata Document stands for the one a user would publish.
        env.setdefault("AGENTHUB_OAUTH_CLIENT_ID_URL", "https://conformance-test.local/client-metadata.json")
        hub = subprocess.Popen(
            [hub_bin, "serve", "--port", "0", "--config-dir", config, "--data-dir", os.path.join(home, "data")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            base = None
            for line in hub.stderr:
                sys.stderr.write(line)
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    base = m.group(1)
                    break
            if not base:
                say("the hub did not start")
                return 1
            # The rest of the hub's log goes on to the suite's output.
            import threading

            threading.Thread(target=lambda: [sys.stderr.write(l) for l in hub.stderr], daemon=True).start()
            deadline = time.monotonic() + DEADLINE_S
            server = wait_status(base, {"RUNNING", "AUTH_REQUIRED", "FAILED"}, deadline)
            say(scenario, "server", server.get("status"), server.get("last_error") or "")
            # A server may ask again later (a call refused for want of scope): a person signs in
            # again, a bounded number of times, as they would on the dashboard.
            for _ in range(MAX_SIGN_INS):
                if server.get("status") == "AUTH_REQUIRED" and not sign_in(base):
                    return 1
                server = wait_status(base, {"RUNNING", "FAILED", "AUTH_REQUIRED"}, deadline)
                say("server", server.get("status"), server.get("last_error") or "")
                if server.get("status") != "RUNNING":
                    return 1
                if use_tools(base, context):
                    return 0
                # A refused call: the hub takes the server back to AUTH_REQUIRED when it must.
                server = wait_status(base, {"AUTH_REQUIRED"}, time.monotonic() + 3)
                if server.get("status") != "AUTH_REQUIRED":
                    return 0
            return 0
        finally:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=10)
            except subprocess.TimeoutExpired:
                hub.kill()


sys.exit(main())
