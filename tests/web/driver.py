#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Drives headless Chromium through the DevTools protocol against a running
`taskq serve` whose queue a demo feeds (tests/test_web.c starts both), and
checks the dashboard as a person would use it:

  - the page loads, draws its charts and fills them with points;
  - the numbers it shows match GET /stats at the same moment: each is read
    between two /stats of the driver's own, after a refresh of the page's,
    and must lie between the two;
  - without the token, the page's buttons are disabled and the same POSTs
    are refused (401); a form posted from another origin is refused (403);
  - with the token (typed in the page), Pause pauses the queue, Kick puts a
    dead task back, Resume resumes;
  - a screenshot of the page while the demo runs.

Prints one JSON line of results on stdout ("ok": true when every check
passed) and exits 0, or exits 1 after saying what failed. Uses Debian's
python3 and python3-websocket only (nothing from the network).

  driver.py --chromium PATH --url http://127.0.0.1:PORT/ --queue NAME
            --token TOKEN --profile DIR --screenshot FILE.png
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websocket  # python3-websocket


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def http(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class Browser:
    def __init__(self, chromium, profile, deadline):
        self.deadline = deadline
        self.proc = None
        try:
            self.start(chromium, profile, deadline)
        except Exception:
            if self.proc:
                self.proc.kill()
                self.proc.wait()
            raise

    def start(self, chromium, profile, deadline):
        port_file = os.path.join(profile, "DevToolsActivePort")
        log_path = os.path.join(profile, "chromium.log")
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only",
             "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            # its crash-report database and settings under the profile too,
            # not in the user's ~/.config, so that nothing is left behind
            env=dict(os.environ, XDG_CONFIG_HOME=profile))

        def started():
            if self.proc.poll() is not None:
                with open(log_path, "rb") as f:
                    raise Fail("chromium exited at start: %s" % f.read()[-2000:].decode(errors="replace"))
            check(time.time() < deadline, "chromium did not start")

        while not os.path.exists(port_file):
            started()
            time.sleep(0.05)
        port = None
        while port is None:
            started()
            with open(port_file) as f:
                lines = f.read().split("\n")
            if len(lines) >= 2 and lines[0].strip():
                port = int(lines[0])
            else:
                time.sleep(0.05)
        page = None
        while page is None:
            check(time.time() < deadline, "chromium has no page")
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5) as r:
                for t in json.loads(r.read()):
                    if t.get("type") == "page":
                        page = t["webSocketDebuggerUrl"]
            time.sleep(0.05)
        # No Origin header: Chromium refuses DevTools websockets that send one.
        self.ws = websocket.create_connection(page, timeout=10, suppress_origin=True)
        self.next_id = 0
        self.console = []

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            check(time.time() < self.deadline, "out of time waiting for %s" % method)
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            if msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] in ("error", "warning"):
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in msg["params"]["args"])[:500])
            if msg.get("method") == "Log.entryAdded" and msg["params"]["entry"]["level"] in ("error", "warning"):
                entry = msg["params"]["entry"]
                where = " (%s)" % entry["url"] if entry.get("url") else ""
                self.console.append((entry.get("text", "") + where)[:500])
            if msg.get("id") == mid:
                check("error" not in msg, "%s: %s" % (method, msg.get("error")))
                return msg["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        check("exceptionDetails" not in r, "in the page, %s: %s" % (expr[:80], r.get("exceptionDetails")))
        return r["result"].get("value")

    def wait(self, expr, what, seconds=15):
        end = min(self.deadline, time.time() + seconds)
        while time.time() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.1)
        raise Fail("timed out: " + what)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def digits(text):
    """The number a card shows ("12,345" or "12 345" by locale)."""
    d = re.sub(r"[^0-9]", "", text or "")
    return int(d) if d else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--token", help="the server's token (without it: --read-only)")
    ap.add_argument("--read-only", action="store_true", help="the server has no token: check the page says so")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--screenshot")
    ap.add_argument("--queue2", help="a second served queue, idle: shown beside the first, its numbers exact")
    ap.add_argument("--seconds", type=float, default=50)
    a = ap.parse_args()
    base = a.url.rstrip("/") + "/"
    qn = a.queue
    deadline = time.time() + a.seconds
    results = {"ok": False, "checks": []}
    done = results["checks"]
    check_args = a.read_only or (a.token and a.screenshot)
    if not check_args:
        ap.error("--token and --screenshot, or --read-only")
    try:
        b = Browser(a.chromium, a.profile, deadline)
    except Exception as e:
        print(json.dumps({"ok": False, "error": "starting chromium: %s" % e}))
        print("driver: starting chromium: %s" % e, file=sys.stderr)
        return 1
    try:
        b.call("Runtime.enable")
        b.call("Log.enable")
        b.call("Page.enable")
        b.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        b.call("Page.navigate", url=base)
        Q = "taskqDashboard.queues[%s]" % json.dumps(qn)
        sel = "document.querySelector('section[data-queue=%s] [data-k=%%s]').textContent" % json.dumps(qn)
        b.wait("window.taskqDashboard && %s && %s.data.t.length >= 5" % (Q, Q), "the page polled five times")
        done.append("loaded")
        if a.read_only:
            read_only(b, base, qn)
            done.append("read_only")
            results["ok"] = True
            return finish(b, results)

        # Charts: uPlot drew canvases and holds the points the page added.
        pts = b.eval("%s.charts.rates.data[0].length" % Q)
        check(pts >= 5, "the rate chart has %s points" % pts)
        check(b.eval("document.querySelectorAll('section[data-queue=%s] .chart canvas').length" % json.dumps(qn)) >= 3,
              "three chart canvases")
        check(b.eval("Math.max(...%s.charts.rates.data[1])" % Q) > 0, "the pushed rate chart shows traffic")
        check(b.eval("%s.charts.counts.data.length" % Q) == 5, "the counts chart has four series")
        results["chart_points"] = pts
        done.append("charts")

        # The numbers shown against /stats, read between two of the driver's.
        def bracket(keys, path_of):
            _, before = http(base + "stats/" + qn)
            polls = b.eval("taskqDashboard.polls")
            b.wait("taskqDashboard.polls >= %d" % (polls + 2), "two refreshes of the page")
            shown = {k: digits(b.eval(sel % k)) for k in keys}
            _, after = http(base + "stats/" + qn)
            for k in keys:
                lo, hi = sorted((path_of(before, k), path_of(after, k)))
                check(shown[k] is not None and lo <= shown[k] <= hi,
                      "%s shown %s, /stats said %s then %s" % (k, shown[k], lo, hi))
            return shown

        shown = bracket(["pushed", "acked"], lambda s, k: s["totals"][k])
        results["shown_live"] = shown
        done.append("numbers_match_stats_live")

        # A second queue, idle: its own section, its numbers exactly /stats's.
        if a.queue2:
            _, s2 = http(base + "stats/" + a.queue2)
            sel2 = "document.querySelector('section[data-queue=%s] [data-k=%%s]').textContent" % json.dumps(a.queue2)
            b.wait("!!document.querySelector('section[data-queue=%s] [data-k=ready]')" % json.dumps(a.queue2), "the second queue's section")
            for k in ("ready", "dead", "pushed"):
                want = s2["totals"][k] if k == "pushed" else s2[k]
                got = digits(b.eval(sel2 % k))
                check(got == want, "%s of %s: shown %s, /stats says %s" % (k, a.queue2, got, want))
            done.append("second_queue")

        # Wait for dead letters and events in the page, then the screenshot.
        b.wait("document.querySelectorAll('section[data-queue=%s] table[data-table=dead] tr[data-id]').length > 0"
               % json.dumps(qn), "dead letters listed")
        b.wait("document.querySelectorAll('section[data-queue=%s] ol.events li').length > 2" % json.dumps(qn),
               "events listed")
        b.wait("document.querySelectorAll('section[data-queue=%s] table[data-table=processes] td.num').length > 0"
               % json.dumps(qn), "processes listed")
        b.wait("%s.data.t.length >= 12" % Q, "a dozen points on the charts", 20)
        # The page down to the end of the first queue's section (and the
        # footer when it is the only one).
        h = b.eval("Math.ceil(%s)" % ("document.querySelector('section[data-queue=%s]').getBoundingClientRect().bottom + 16"
                                       % json.dumps(qn) if a.queue2 else "document.documentElement.scrollHeight"))
        b.call("Emulation.setDeviceMetricsOverride", width=1280, height=min(h, 3000), deviceScaleFactor=1, mobile=False)
        b.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # laid out again
        shot = b.call("Page.captureScreenshot", format="png",
                      clip={"x": 0, "y": 0, "width": 1280, "height": min(h, 3000), "scale": 1})
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        done.append("screenshot")

        # On a phone's width: one column, nothing wider than the screen.
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        b.wait("document.documentElement.clientWidth <= 390 && [...document.querySelectorAll('.chart')].every("
               "c => c.firstElementChild && c.firstElementChild.getBoundingClientRect().right <= 390)",
               "charts narrowed to a phone's width")
        sw = b.eval("document.documentElement.scrollWidth")
        check(sw <= 390, "the page is %s px wide on a 390 px screen" % sw)
        b.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        done.append("phone_layout")

        # Without the token: read-only buttons, and the same requests refused.
        check(b.eval("document.getElementById('auth').dataset.mode") == "locked", "the page asks for the token")
        check(b.eval("[...document.querySelectorAll('button[data-action]')].every(x => x.disabled)"),
              "buttons disabled without the token")
        dead_id = b.eval("document.querySelector('section[data-queue=%s] table[data-table=dead] tr[data-id]')"
                         ".dataset.id" % json.dumps(qn))
        for path in ("queues/%s/pause" % qn, "queues/%s/dead/%s/kick" % (qn, dead_id)):
            st = b.eval("fetch(%s, {method: 'POST'}).then(r => r.status)" % json.dumps(path))
            check(st == 401, "POST %s without the token: %s, want 401" % (path, st))
            st = b.eval("fetch(%s, {method: 'POST', headers: {Authorization: 'Bearer wrong'}}).then(r => r.status)"
                        % json.dumps(path))
            check(st == 401, "POST %s with a wrong token: %s, want 401" % (path, st))
        _, health = http(base + "healthz")
        check(health["queues"][qn] == "running", "still running after refused requests: %s" % health)
        done.append("refused_without_token")

        # With the token, typed in the page.
        b.eval("document.getElementById('token').value = %s; document.getElementById('token-use').click()"
               % json.dumps(a.token))
        check(b.eval("sessionStorage.getItem('taskq-token')") == a.token, "the token is in sessionStorage")
        check(b.eval("document.cookie") == "", "no cookie")
        check(a.token not in b.eval("location.href"), "the token is not in the URL")
        b.wait("[...document.querySelectorAll('button[data-action]')].every(x => !x.disabled)", "buttons enabled")
        b.eval("document.querySelector('section[data-queue=%s] button[data-action=pause]').click()" % json.dumps(qn))
        end = time.time() + 10
        while http(base + "healthz")[1]["queues"][qn] != "paused":
            check(time.time() < end, "Pause did not pause the queue")
            time.sleep(0.05)
        b.wait("document.querySelector('section[data-queue=%s] .badge').textContent === 'paused'" % json.dumps(qn),
               "the page shows paused")
        done.append("pause")

        # Paused, nothing is taken: once the workers have finished what they
        # held, every count moves one way only (ready up, delayed down, dead
        # still), so the gauges shown must lie between two /stats around a
        # refresh too.
        end = time.time() + 10
        while http(base + "stats/" + qn)[1]["leased"] != 0:
            check(time.time() < end, "tasks still in progress 10 s after the pause")
            time.sleep(0.05)
        shown = bracket(["ready", "leased", "delayed", "dead", "pushed", "acked"],
                        lambda s, k: s["totals"][k] if k in ("pushed", "acked") else s[k])
        results["shown_paused"] = shown
        done.append("numbers_match_stats_paused")

        # Kick the first dead letter by its button.
        _, ev0 = http(base + "events/" + qn)
        dead_id = b.eval("document.querySelector('section[data-queue=%s] table[data-table=dead] tr[data-id]')"
                         ".dataset.id" % json.dumps(qn))
        b.eval("document.querySelector('section[data-queue=%s] table[data-table=dead] tr[data-id=\"%s\"] "
               "button[data-action=kick]').click()" % (json.dumps(qn), dead_id))
        end = time.time() + 10
        while True:
            _, ev = http(base + "events/%s?after=%d" % (qn, ev0["last"]))
            if any(e["event"] == "dead_kicked" and str(e.get("id")) == dead_id for e in ev["events"]):
                break
            check(time.time() < end, "Kick of task %s left no dead_kicked event" % dead_id)
            time.sleep(0.05)
        _, dl = http(base + "dead/" + qn)
        check(all(str(t["id"]) != dead_id for t in dl["tasks"]), "task %s is still dead" % dead_id)
        b.wait("!document.querySelector('section[data-queue=%s] table[data-table=dead] tr[data-id=\"%s\"]')"
               % (json.dumps(qn), dead_id), "the kicked task leaves the page's list")
        results["kicked"] = dead_id
        done.append("kick")

        b.eval("document.querySelector('section[data-queue=%s] button[data-action=resume]').click()" % json.dumps(qn))
        end = time.time() + 10
        while http(base + "healthz")[1]["queues"][qn] != "running":
            check(time.time() < end, "Resume did not resume the queue")
            time.sleep(0.05)
        done.append("resume")

        # Cross-site: a form another page posts (no token can come with it),
        # and a request with the token but a foreign Origin: both refused.
        st, body = http(base + "queues/%s/pause" % qn, "POST",
                        {"Authorization": "Bearer " + a.token, "Origin": "http://evil.example"})
        check(st == 403, "POST with a foreign Origin and the token: %s %s, want 403" % (st, body))
        form = ("<form method=post action='%squeues/%s/pause'></form><script>document.forms[0].submit()</script>"
                % (base, qn))
        b.call("Page.navigate", url="data:text/html;base64," + base64.b64encode(form.encode()).decode())
        b.wait("document.body && document.body.innerText.includes('cross-origin request refused')",
               "the cross-site form is refused")
        check(http(base + "healthz")[1]["queues"][qn] == "running", "a cross-site form changed the state")
        done.append("cross_site_refused")

        results["ok"] = True
    except Fail as e:
        results["error"] = str(e)
    except Exception as e:  # a protocol or socket error: still close the browser
        results["error"] = "%s: %s" % (type(e).__name__, e)
    return finish(b, results)


def read_only(b, base, qn):
    """A server without a token: the page says so and offers no control."""
    check(b.eval("document.getElementById('auth').dataset.mode") == "read-only", "the page is read-only")
    check("Read-only" in b.eval("document.getElementById('mode').textContent"), "the page says it is read-only")
    check(b.eval("document.getElementById('token').hidden"), "no token field")
    # No --nats: /cluster is 404 and the Machines section stays hidden.
    b.wait("window.taskqDashboard.cluster === 'off'", "the page asked for /cluster and got 404")
    check(b.eval("document.getElementById('machines').hidden"), "the Machines section hidden without --nats")
    check(b.eval("[...document.querySelectorAll('button[data-action]')].every(x => x.disabled)"), "buttons disabled")
    st = b.eval("fetch('queues/%s/pause', {method: 'POST', headers: {Authorization: 'Bearer x'}}).then(r => r.status)" % qn)
    check(st == 403, "POST pause on a server without a token: %s, want 403" % st)
    check(http(base + "healthz")[1]["queues"][qn] == "running", "the state changed")


def finish(b, results):
    results["console"] = b.console
    b.close()
    print(json.dumps(results))
    if not results["ok"]:
        print("driver: " + results["error"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
