#!/usr/bin/env python3
"""Browser tests of the two pages, in Debian's headless chromium driven over the DevTools protocol (cdp.py).

  test_pages.py report SPIKELINE WORK_DIR SCREENSHOT.png   simulate -> sort -> report -> load the page, check it
  test_pages.py live   SPIKELINE WORK_DIR SCREENSHOT.png   replay -> stream --http -> load the live page, check it

Exit 0: passed; 77: chromium is not installed (CTest reports the test as skipped); anything else: failed."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

SKIP = 77


def run(*args, **kwargs):
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def read_tsv(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def canvas_has_ink(browser, canvas_id):
    return browser.evaluate(
        f"(() => {{ const c = document.getElementById('{canvas_id}'); const d = c.getContext('2d')"
        f".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        f" for (let i = 3; i < d.length; i += 4) if (d[i]) ++n; return n; }})()")


def test_report(spikeline, work, screenshot):
    sim, sort = os.path.join(work, "sim"), os.path.join(work, "sort")
    run(spikeline, "simulate", "-q", "--out", sim, "--channels", "64", "--duration", "20", "--drift-model", "sine",
        "--seed", "3")
    run(spikeline, "sort", os.path.join(sim, "recording.bin"), "--out", sort, "--calibration-s", "8")
    report = os.path.join(work, "report.html")
    run(spikeline, "report", sort, "--out", report, "--ground-truth", os.path.join(sim, "ground_truth"))
    clusters = [row for row in read_tsv(os.path.join(sort, "cluster_info.tsv"))
                if int(row["cluster_id"]) > 0 and int(row["n_spikes"]) > 0]
    good = [row for row in clusters if row["group"] == "good"]
    truth_units = read_tsv(os.path.join(sim, "ground_truth", "units.tsv"))
    check(len(clusters) > 3, f"the sort found only {len(clusters)} units")

    with cdp.Browser() as browser:
        start = time.monotonic()
        browser.navigate("file://" + os.path.abspath(report))
        browser.wait_for("document.body.dataset.ready === '1'")
        print(f"report loaded in {time.monotonic() - start:.2f} s")
        check(not browser.errors(), f"console errors: {browser.errors()}")
        rows = browser.evaluate("document.querySelectorAll('#units-table tr.unit-row').length")
        check(rows == len(clusters), f"{rows} unit rows, cluster_info.tsv has {len(clusters)} units")
        for canvas in ("probe-canvas", "drift-canvas", "waveform-canvas", "isi-canvas", "amplitude-canvas",
                       "rate-canvas"):
            check(canvas_has_ink(browser, canvas) > 500, f"{canvas} is blank")
        check("motion estimate" in browser.evaluate("document.getElementById('drift-legend').textContent"),
              "the drift map does not show the motion estimate")
        gt_rows = browser.evaluate("document.querySelectorAll('#gt-units tr').length") - 1
        check(gt_rows == len(truth_units), f"{gt_rows} ground-truth rows, units.tsv has {len(truth_units)}")
        # A unit opens from its table row; the filter keeps the good ones; a header click sorts.
        last = clusters[-1]["cluster_id"]
        browser.evaluate(f"document.querySelector('tr.unit-row[data-cluster=\"{last}\"]').click()")
        browser.wait_for(f"document.getElementById('unit-panel').dataset.cluster === '{last}'", timeout=5)
        browser.evaluate("(() => { const f = document.getElementById('units-filter'); f.value = 'good';"
                         " f.dispatchEvent(new Event('input')); })()")
        shown = browser.evaluate("document.querySelectorAll('#units-table tr.unit-row').length")
        check(shown == len(good), f"filter 'good' shows {shown} rows, {len(good)} units are good")
        browser.evaluate("(() => { const f = document.getElementById('units-filter'); f.value = '';"
                         " f.dispatchEvent(new Event('input'));"
                         " document.querySelector('#units-table th[data-key=n_spikes]').click(); })()")
        counts = browser.evaluate("[...document.querySelectorAll('#units-table tr.unit-row td:nth-child(3)')]"
                                  ".map(td => +td.textContent)")
        check(counts == sorted(counts, reverse=True), "sorting by spikes does not order the rows")
        browser.evaluate(f"location.hash = 'unit-{clusters[0]['cluster_id']}'")
        browser.wait_for(f"document.getElementById('unit-panel').dataset.cluster === '{clusters[0]['cluster_id']}'",
                         timeout=5)
        check(not browser.errors(), f"console errors: {browser.errors()}")
        browser.screenshot(screenshot)


def free_udp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_live(spikeline, work, screenshot):
    sim, out = os.path.join(work, "sim"), os.path.join(work, "stream")
    run(spikeline, "simulate", "-q", "--out", sim, "--channels", "64", "--duration", "12", "--seed", "5")
    udp = f"udp://127.0.0.1:{free_udp_port()}"
    stream_err = open(os.path.join(work, "stream.err"), "w+")
    stream = subprocess.Popen(
        [spikeline, "stream", "--source", udp, "--channels", "64", "--sample-rate", "30000", "--probe",
         os.path.join(sim, "probe.json"), "--out", out, "--calibration-s", "3", "--http", "127.0.0.1:0", "--insecure", "-q"],
        stdout=subprocess.DEVNULL, stderr=stream_err)
    replay = None
    try:
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            stream_err.seek(0)
            found = re.search(r"live view at (http://\S+)", stream_err.read())
            url = found.group(1) if found else None
            time.sleep(0.05)
        check(url is not None, "stream did not announce its live view")
        replay = subprocess.Popen([spikeline, "replay", os.path.join(sim, "recording.bin"), "--to", udp, "--insecure", "--loss",
                                   "0.01", "--reorder", "0.02", "--duplicate", "0.01", "--corrupt", "0.01", "-q"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with cdp.Browser() as browser:
            browser.navigate(url)
            browser.wait_for("window.liveState && window.liveState.updates > 5 && window.liveState.spikesDrawn > 0")
            first = browser.evaluate("window.liveState.rasterEnd")
            time.sleep(1.5)
            second = browser.evaluate("window.liveState.rasterEnd")
            check(second - first > 0.8, f"the raster did not advance: {first} -> {second} s")
            status = browser.evaluate("document.getElementById('status').textContent")
            check(status == "live", f"status is {status!r}, not live")
            # A reconnect (reload) starts from a fresh hello and the last seconds, then goes on.
            browser.navigate(url)
            browser.wait_for("window.liveState.hellos === 1 && window.liveState.updates > 3 && "
                             "window.liveState.spikesDrawn > 0")
            browser.wait_for("+(document.querySelector('#link-table').textContent.match(/CRC failures(\\d+)/) "
                             "|| [0, 0])[1] > 0", timeout=15)
            for canvas in ("raster-canvas", "heatmap-canvas", "latency-canvas", "units-canvas"):
                check(canvas_has_ink(browser, canvas) > 200, f"{canvas} is blank")
            browser.wait_for("window.liveState.updates > 0 && /units$/.test("
                             "document.getElementById('units-legend').textContent)", timeout=15)
            browser.screenshot(screenshot)
            check(replay.wait(timeout=60) == 0, "replay failed: " + replay.stderr.read().decode())
            time.sleep(0.3)
            stream.send_signal(signal.SIGINT)
            browser.wait_for("window.liveState.ended", timeout=15)
            status = browser.evaluate("document.getElementById('status').textContent")
            check(status == "stream ended (sigint)", f"status after the end: {status}")
            check(not browser.errors(), f"console errors: {browser.errors()}")
        check(stream.wait(timeout=30) == 0, "stream failed")
        summary = json.load(open(os.path.join(out, "stream.json")))
        check(summary["http"]["port"] > 0, "stream.json does not record the live view's port")
    finally:
        for process in (replay, stream):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        stream_err.close()


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("report", "live"):
        print(__doc__)
        return 2
    if cdp.find_chromium() is None:
        print("skipped: chromium is not installed (scripts/setup.sh installs it)")
        return SKIP
    mode, spikeline, work, screenshot = sys.argv[1:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    {"report": test_report, "live": test_live}[mode](spikeline, work, screenshot)
    print(f"passed; screenshot {screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
