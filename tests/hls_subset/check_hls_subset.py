#!/usr/bin/env python3
"""Checks that the HLS sources keep to the subset Vitis HLS synthesises (issue 18, item 3).

Scanned: kernels/*.cpp|hpp (not the C-simulation test benches *_tb.cpp|hpp, not kernels/opencl or kernels/rtl) and
hls/include/**/*.hpp. Rules, each with the name the report uses:
  heap          no new / delete / malloc / calloc / realloc / free / make_unique / make_shared
  container     no standard containers, strings or streams (std::vector, std::map, std::string, iostream, ...)
  recursion     no function calling itself (a call with its own name and parameter count)
  exception     no throw / try / catch
  unbounded     no while or do loop; a for loop needs a condition, and a LOOP_TRIPCOUNT pragma in its body when the
                bound is a run-time value (anything but literals, Config::member constants, kConstants, constexpr
                names of the file and template parameters)
  float         no float / double on the fixed-point path (every scanned file)
  interface     every argument of an extern "C" top (and its return) has a #pragma HLS INTERFACE
Usage: check_hls_subset.py ROOT           checks the project under ROOT, exit 1 on a violation
       check_hls_subset.py --file F ...   checks the given files, prints one line per violation "rule file:line"
"""
import os
import re
import sys

CONTAINERS = r"\bstd::(vector|map|multimap|set|multiset|unordered_map|unordered_set|list|forward_list|deque|" \
             r"string|wstring|basic_string|stringstream|ostringstream|istringstream|function|queue|stack|" \
             r"priority_queue|cout|cerr|cin)\b|#\s*include\s*<(vector|map|set|unordered_map|unordered_set|list|" \
             r"deque|string|sstream|iostream|fstream|functional|queue|stack)>"
HEAP = r"(?<![\w.])new\b(?!\s*\()|\bdelete\b(?!\s*;)|\b(malloc|calloc|realloc|free|make_unique|make_shared)\s*\("
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "static_cast", "reinterpret_cast", "const_cast",
            "decltype", "alignof", "catch", "do", "else", "case", "defined"}


def strip_comments_and_strings(text):
    """Comments and string/char literals become spaces (newlines kept, so line numbers stay)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):  # 1'000 digit separators
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def matching(text, pos, open_char, close_char):
    """Index of the bracket closing the one at pos."""
    depth = 0
    for i in range(pos, len(text)):
        if text[i] == open_char:
            depth += 1
        elif text[i] == close_char:
            depth -= 1
            if depth == 0:
                return i
    return len(text) - 1


def split_top_level(text):
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def static_names(code):
    names = set(re.findall(r"\bconstexpr\s+[\w:<>]+\s+(\w+)\s*=", code))
    for params in re.findall(r"template\s*<([^>]*)>", code):
        for p in params.split(","):
            m = re.search(r"(\w+)\s*$", p.strip())
            if m:
                names.add(m.group(1))
    return names


def bound_is_static(expr, names):
    expr = re.sub(r"static_cast\s*<[^>]*>", "", expr)
    for token in re.findall(r"[A-Za-z_][\w]*(?:\s*::\s*[A-Za-z_]\w*)*", expr):
        if "::" in token or token in names or re.fullmatch(r"k[A-Z]\w*", token) or token in ("true", "false"):
            continue
        return False
    return True


def check_loops(code, path, report):
    names = static_names(code)
    for m in re.finditer(r"\b(while|do)\b", code):
        if m.group(1) == "do" and not re.match(r"do\s*\{", code[m.start():]):
            continue
        report("unbounded", path, line_of(code, m.start()), m.group(1) + " loop")
    for m in re.finditer(r"\bfor\s*\(", code):
        open_pos = code.index("(", m.start())
        close = matching(code, open_pos, "(", ")")
        header = code[open_pos + 1:close]
        parts = header.split(";")
        if len(parts) != 3:  # range-for: bounded by its (static) array
            continue
        condition = parts[1].strip()
        line = line_of(code, m.start())
        if not condition:
            report("unbounded", path, line, "for loop without a condition")
            continue
        bound = re.split(r"<=|>=|<|>|!=", condition)
        if len(bound) < 2 or "&&" in condition or "||" in condition:
            static = False
        elif re.search(r">=?", condition):  # counting down: the start is the bound
            start = parts[0].split("=", 1)
            static = len(start) == 2 and bound_is_static(start[1], names)
        else:
            static = bound_is_static(bound[-1], names)
        if static:
            continue
        body_start = close + 1
        while body_start < len(code) and code[body_start].isspace():
            body_start += 1
        body_end = matching(code, body_start, "{", "}") if code[body_start:body_start + 1] == "{" else \
            code.find(";", body_start)
        if not re.search(r"#\s*pragma\s+HLS\s+LOOP_TRIPCOUNT", code[body_start:body_end]):
            report("unbounded", path, line, "run-time bound '%s' without LOOP_TRIPCOUNT" % condition)


FUNCTION = re.compile(r"(?<![\w.:>])([A-Za-z_]\w*)\s*\(([^;{}()]*(?:\([^()]*\)[^;{}()]*)*)\)\s*(?:const\s*)?"
                      r"(?:noexcept\s*)?(?:->\s*[\w:<>]+\s*)?\{")


def check_recursion(code, path, report):
    for m in FUNCTION.finditer(code):
        name = m.group(1)
        if name in KEYWORDS:
            continue
        arity = len(split_top_level(m.group(2))) if m.group(2).strip() not in ("", "void") else 0
        body_start = m.end() - 1
        body = code[body_start:matching(code, body_start, "{", "}")]
        for call in re.finditer(r"(?<![\w.:>])" + re.escape(name) + r"\s*(?:<[^;(){}]*>)?\s*\(", body):
            open_pos = body.index("(", call.start() + len(name))
            args = body[open_pos + 1:matching(body, open_pos, "(", ")")]
            if len(split_top_level(args)) == arity:
                report("recursion", path, line_of(code, body_start + call.start()), name + " calls itself")


def check_interfaces(code, path, report):
    for m in re.finditer(r'extern\s+"C"\s+[\w:\s\*]+?\b(\w+)\s*\(([^)]*)\)\s*\{', code_with_quotes(code)):
        body_start = m.end() - 1
        body = code[body_start:matching(code, body_start, "{", "}")]
        ports = set(re.findall(r"#\s*pragma\s+HLS\s+INTERFACE\b[^\n]*?\bport\s*=\s*(\w+)", body))
        args = [re.search(r"(\w+)\s*$", a).group(1) for a in split_top_level(m.group(2))]
        for arg in args + ["return"]:
            if arg not in ports:
                report("interface", path, line_of(code, m.start()),
                       "argument '%s' of %s has no INTERFACE pragma" % (arg, m.group(1)))


def code_with_quotes(code):
    return code  # literals were blanked but their quotes kept: extern "C" still reads as extern " "


def check_text(text, path, report):
    code = strip_comments_and_strings(text)
    code_c = re.sub(r'extern\s+"\s"', 'extern "C"', code)
    for m in re.finditer(HEAP, code):
        report("heap", path, line_of(code, m.start()), m.group(0).strip())
    for m in re.finditer(CONTAINERS, code):
        report("container", path, line_of(code, m.start()), m.group(0).strip())
    for m in re.finditer(r"\b(throw|try|catch)\b", code):
        report("exception", path, line_of(code, m.start()), m.group(1))
    for m in re.finditer(r"\b(float|double|long\s+double)\b", code):
        report("float", path, line_of(code, m.start()), m.group(1))
    check_loops(code, path, report)
    check_recursion(code, path, report)
    check_interfaces(code_c, path, report)


def project_files(root):
    files = []
    kernels = os.path.join(root, "kernels")
    for name in sorted(os.listdir(kernels)):
        if name.endswith((".cpp", ".hpp")) and not name.endswith(("_tb.cpp", "_tb.hpp")):
            files.append(os.path.join(kernels, name))
    for folder, _, names in sorted(os.walk(os.path.join(root, "hls", "include"))):
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith((".hpp", ".h"))]
    return files


def main(argv):
    violations = []

    def report(rule, path, line, what):
        violations.append((rule, path, line, what))

    if len(argv) >= 2 and argv[0] == "--file":
        paths = argv[1:]
    elif len(argv) == 1:
        paths = project_files(argv[0])
        if not paths:
            print("no HLS sources found under %s: pass the project's root folder" % argv[0])
            return 2
    else:
        print(__doc__)
        return 2
    for path in paths:
        with open(path, encoding="utf-8") as f:
            check_text(f.read(), path, report)
    for rule, path, line, what in violations:
        print("%s %s:%d: %s" % (rule, path, line, what))
    if not violations and argv[0] != "--file":
        print("HLS subset: %d files, no violation" % len(paths))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
