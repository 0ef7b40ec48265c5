#!/usr/bin/env python3
"""Lists functions longer than a limit (default 80 lines) in C++ sources.

Heuristic, good enough for this code base's style: a function body is a brace
block that opens at namespace level (namespace blocks do not count) or inside
a class body defined at namespace level; its length is the lines from the
signature's brace to the closing one. Strings, chars and comments are skipped.

Usage: long_functions.py [--limit N] PATH...   (exit 1 if any is found)
"""
import os, re, sys

def strip(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i); j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2); j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end])); i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (j + 1 - i)); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)

def functions(path):
    text = strip(open(path, encoding="utf-8", errors="replace").read())
    stack = []  # kinds: 'ns', 'class', 'fn', 'other'
    line = 1
    start = {}
    found = []
    i = 0
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c == "{":
            head = text[max(0, text.rfind(";", 0, i), text.rfind("}", 0, i), text.rfind("{", 0, i)) + 1:i]
            kind = "other"
            if re.search(r"\bnamespace\b[\w:\s]*$", head) or re.search(r'extern\s*$', head):
                kind = "ns"
            elif re.search(r"\b(class|struct|union|enum)\b[^()]*$", head):
                kind = "class"
            elif all(k in ("ns", "class") for k in stack) and ")" in head:
                kind = "fn"
                name = re.findall(r"([~\w:]+)\s*\(", head)
                start[len(stack)] = (line, name[0] if name else "?")
            stack.append(kind)
        elif c == "}":
            if not stack: continue
            kind = stack.pop()
            if kind == "fn":
                s, name = start.pop(len(stack))
                found.append((line - s + 1, s, name))
    return found

def main():
    args = sys.argv[1:]
    limit = 80
    if args[:1] == ["--limit"]:
        limit = int(args[1]); args = args[2:]
    bad = 0
    for root in args:
        paths = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
        for p in sorted(paths):
            if not p.endswith((".cc", ".h")): continue
            for length, s, name in functions(p):
                if length > limit:
                    print(f"{p}:{s}: {name}: {length} lines"); bad = 1
    return bad

sys.exit(main())
