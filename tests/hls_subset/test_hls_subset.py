#!/usr/bin/env python3
"""CTest: the HLS sources keep to the Vitis HLS subset, and the check catches each rule's deliberate violation.

Every file in bad/ names the one rule it breaks in its first line ("(rule NAME)"); the check must report that rule
for it and no other, every rule must have such a file, and the project's real kernels must pass.
Usage: test_hls_subset.py PROJECT_ROOT
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_hls_subset.py")
RULES = {"heap", "container", "recursion", "exception", "unbounded", "float", "interface"}


def run(args):
    result = subprocess.run([sys.executable, CHECK] + args, capture_output=True, text=True)
    return result.returncode, result.stdout


def main(root):
    failures = []
    code, out = run([root])
    if code != 0:
        failures.append("the project's HLS sources break the subset:\n" + out)
    covered = set()
    bad = os.path.join(HERE, "bad")
    for name in sorted(os.listdir(bad)):
        path = os.path.join(bad, name)
        with open(path, encoding="utf-8") as f:
            m = re.search(r"\(rule (\w+)\)", f.readline())
        if not m or m.group(1) not in RULES:
            failures.append("%s: the first line must name its rule, one of %s" % (name, sorted(RULES)))
            continue
        rule = m.group(1)
        covered.add(rule)
        code, out = run(["--file", path])
        found = {line.split(" ", 1)[0] for line in out.splitlines() if line}
        if code != 1 or rule not in found:
            failures.append("%s: the check missed its %s violation (exit %d):\n%s" % (name, rule, code, out))
        elif found != {rule}:
            failures.append("%s: breaks only %s, but the check also reported %s" % (name, rule, sorted(found - {rule})))
    for rule in sorted(RULES - covered):
        failures.append("no deliberate violation of rule %s in %s" % (rule, bad))
    for failure in failures:
        print("FAIL " + failure)
    if not failures:
        print("the real sources pass; %d deliberate violations caught, one per rule" % len(os.listdir(bad)))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
