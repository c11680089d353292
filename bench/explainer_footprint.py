#!/usr/bin/env python3
"""The explainer's memory under a burst of alert groups (the numbers behind the chart's
explainer requests and limits, docs/benchmarks.md "Footprint").

Usage: bench/explainer_footprint.py [GROUPS] (default 10000), after
`cargo build --release -p egressor`. Starts target/release/egressor explainer against a
Prometheus that refuses connections (each query fails fast; nothing else is contacted),
posts GROUPS Alertmanager notifications with distinct group keys from 32 threads, and
prints VmRSS/VmHWM (kB) idle and 3 s after the last answer.
"""
import concurrent.futures
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

BIN = pathlib.Path(__file__).resolve().parent.parent / "target/release/egressor"
ALERT = {
    "status": "firing",
    "labels": {"alertname": "EgressSpike", "workload": "api"},
    "annotations": {"summary": "s"},
    "startsAt": "2026-12-03T10:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://127.0.0.1:1/graph?g0.expr=up",
}


def notification(i):
    """Alertmanager's webhook payload (version 4), one alert, group key number i."""
    return {
        "version": "4", "groupKey": '{}:{alertname="EgressSpike",n="%d"}' % i,
        "truncatedAlerts": 0, "status": "firing", "receiver": "egressor",
        "groupLabels": {"alertname": "EgressSpike"},
        "commonLabels": ALERT["labels"], "commonAnnotations": {},
        "externalURL": "http://am:9093", "alerts": [dict(ALERT, fingerprint="%x" % i)],
    }


def memory(pid):
    fields = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
    return {k: fields[k].strip() for k in ("VmRSS", "VmHWM")}


def main():
    groups = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    p = subprocess.Popen(
        [BIN, "explainer", "--prometheus.url", "http://127.0.0.1:1",
         "--web.listen-address", f"127.0.0.1:{port}", "--prometheus.timeout", "1s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        print("idle", memory(p.pid))

        def post(i):
            request = urllib.request.Request(
                url + "/api/v1/alertmanager", data=json.dumps(notification(i)).encode(),
                headers={"Content-Type": "application/json"})
            return urllib.request.urlopen(request, timeout=30).status

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(post, range(groups)))
        assert statuses == [200] * groups, "every notification accepted"
        time.sleep(3)
        print(f"after {groups} alert groups", memory(p.pid))
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
