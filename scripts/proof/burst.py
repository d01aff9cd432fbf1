"""Management API under a burst of concurrent POST /metrics/enable (used by load.sh).

Phase 1: N concurrent requests, each flipping a different metric: every request must be
answered 200 and every write must survive (no lost update). Phase 2: N concurrent writers on
one metric, then one final write after all returned: the final state must equal that write.
Then config.yaml must still load: POST /reload (the exporter's own parser) must succeed and
GET /metrics/list must show exactly the expected table.

usage: burst.py API_ADDR CONFIG_PATH [N]
"""
import concurrent.futures
import json
import sys
import time
import urllib.error
import urllib.request


def call(api, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{api}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def main():
    api, config_path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    status, listing = call(api, "GET", "/metrics/list")
    assert status == 200, f"GET /metrics/list answered {status}: {listing}"
    names = sorted(listing["metrics"])
    assert len(names) >= 2, f"too few metrics to exercise: {names}"
    expected = dict(listing["metrics"])
    failures = []

    # Phase 1: distinct metrics, each set to the opposite of its current value.
    writes = [{names[i % len(names)]: not expected[names[i % len(names)]]} for i in range(min(n, len(names)))]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda b: call(api, "POST", "/metrics/enable", b), writes))
    t1 = time.monotonic()
    for body, (status, answer) in zip(writes, results):
        if status != 200:
            failures.append(f"phase 1 {body} answered {status}: {answer}")
        expected.update(body)

    # Phase 2: many concurrent writers on one metric, then the last word.
    target = names[0]
    flips = [{target: i % 2 == 0} for i in range(n)]
    t2 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda b: call(api, "POST", "/metrics/enable", b), flips))
    t3 = time.monotonic()
    failures += [f"phase 2 {b} answered {s}: {a}" for b, (s, a) in zip(flips, results) if s != 200]
    last = {target: not expected[target]}
    status, answer = call(api, "POST", "/metrics/enable", last)
    if status != 200:
        failures.append(f"final write answered {status}: {answer}")
    expected.update(last)

    def differences(got):
        # Every metric we know must hold what we wrote last; metrics discovered meanwhile
        # (tegrastats printed a new field) may appear, switched off.
        diff = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
        diff.update({k: ("new, off", v) for k, v in got.items() if k not in expected and v is not False})
        return diff

    status, listing = call(api, "GET", "/metrics/list")
    if status != 200 or differences(listing["metrics"]):
        failures.append(f"state after the burst differs from the writes (expected, got): {differences(listing['metrics'])}")
    try:
        import yaml  # optional: the exporter's own reload below is the authoritative check

        on_disk = yaml.safe_load(open(config_path))["metrics"]
        for k, v in expected.items():
            if on_disk.get(k) != v:
                failures.append(f"config.yaml has {k}: {on_disk.get(k)}, expected {v}")
    except ImportError:
        pass
    status, answer = call(api, "POST", "/reload")
    if status != 200:
        failures.append(f"POST /reload after the burst answered {status}: {answer}")
    status, listing = call(api, "GET", "/metrics/list")
    if status != 200 or differences(listing["metrics"]):
        failures.append(f"state after POST /reload differs from the writes, config.yaml lost a write: {differences(listing['metrics'])}")

    total = len(writes) + len(flips) + 1
    print(f"burst: {len(writes)} distinct writes in {t1 - t0:.2f} s, {len(flips)} same-metric writes "
          f"in {t3 - t2:.2f} s ({len(flips) / max(t3 - t2, 1e-9):.0f} req/s), {total} answered, "
          f"{len(failures)} failures")
    for f in failures[:20]:
        print(f"burst FAIL: {f}")
    sys.exit(1 if failures else 0)


main()
