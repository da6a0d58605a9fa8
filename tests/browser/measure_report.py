#!/usr/bin/env python3
"""How long a report takes to open in headless chromium: navigation start -> page parsed, data decoded and every
panel of the first unit drawn (the page's data-render-ms), median of --repeats fresh loads.

usage: measure_report.py REPORT.html [--repeats 5] [--screenshot FILE.png]"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    times = []
    with cdp.Browser() as browser:
        for _ in range(args.repeats):
            browser.navigate("about:blank")
            browser.navigate("file://" + os.path.abspath(args.report))
            browser.wait_for("document.body && document.body.dataset.ready === '1'", timeout=60)
            times.append(float(browser.evaluate("document.body.dataset.renderMs")))
            if browser.errors():
                print("console errors:", browser.errors())
                return 1
        # Opening another unit (its panels are drawn on demand) and sorting the units table by spike count.
        switch = browser.evaluate("(() => { const rows = document.querySelectorAll('tr.unit-row');"
                                  " const t = performance.now(); location.hash = 'unit-' + rows[rows.length - 1]"
                                  ".dataset.cluster; window.dispatchEvent(new HashChangeEvent('hashchange'));"
                                  " return performance.now() - t; })()")
        resort = browser.evaluate("(() => { const t = performance.now(); document.querySelector("
                                  "'#units-table th[data-key=n_spikes]').click(); return performance.now() - t; })()")
        if args.screenshot:
            browser.screenshot(args.screenshot)
    print(f"{os.path.getsize(args.report) / 1e6:.1f} MB; open (ms): {', '.join(f'{t:.0f}' for t in times)}; "
          f"median {statistics.median(times):.0f} ms; another unit {switch:.0f} ms; table sorted {resort:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
