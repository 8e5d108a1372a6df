"""The code's shape, as the architecture reviews measure it: function lengths, wide signatures and
file sizes of the product Python (every git-tracked .py outside tests/ and bench/).

A function's length is its non-blank lines from the `def` line to its last line, nested
functions and methods counted on their own too (as docs/../architecture-2026-12-07.md §2b).
Prints one block of text; `--json` prints the same figures as JSON.

    python bench/code_shape.py                 # this checkout
    python bench/code_shape.py --root DIR      # another checkout, e.g. of the reviewed commit
"""
from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PRODUCT = ("tests/", "bench/")
LONG = 60           # lines: a function the review lists by name
WIDE = 8            # parameters: a signature the review lists by name
BIG_FILE = 400      # physical lines: a file the review asks to split by idea


def product_files(root: Path = ROOT) -> list[Path]:
    names = subprocess.run(["git", "-C", str(root), "ls-files", "*.py"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [root / n for n in names if not n.startswith(NOT_PRODUCT)]


def functions(path: Path, root: Path = ROOT):
    """(place, non-blank lines, parameters) of every function and method in the file."""
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = lines[node.lineno - 1:node.end_lineno]
            a = node.args
            params = [p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
            params += [p for p in (a.vararg, a.kwarg) if p is not None]
            yield (f"{path.relative_to(root)}:{node.lineno} {node.name}", sum(1 for s in body if s.strip()),
                   len(params))


def shape(root: Path = ROOT) -> dict:
    files = product_files(root)
    found = [f for p in files for f in functions(p, root)]
    sizes = sorted(n for _, n, _ in found)
    physical = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in files}
    return {"files": len(files), "functions": len(found), "median": statistics.median(sizes),
            "p90": sizes[int(0.9 * (len(sizes) - 1))],
            "long": sorted(((n, place) for place, n, _ in found if n > LONG), reverse=True),
            "wide": sorted(((k, place) for place, _, k in found if k > WIDE), reverse=True),
            "big_files": sorted(((n, f) for f, n in physical.items() if n > BIG_FILE), reverse=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--root", type=Path, default=ROOT, help="a checkout (default: this one)")
    args = ap.parse_args()
    s = shape(args.root.resolve())
    if args.json:
        print(json.dumps(s, indent=1))
        return
    print(f"{s['functions']} functions in {s['files']} product files: median {s['median']} non-blank "
          f"lines, p90 {s['p90']}")
    print(f"over {LONG} lines: " + ("; ".join(f"{p} {n}" for n, p in s["long"]) or "none"))
    print(f"over {WIDE} parameters: " + ("; ".join(f"{p} {k}" for k, p in s["wide"]) or "none"))
    print(f"files over {BIG_FILE} lines: " + ("; ".join(f"{f} {n}" for n, f in s["big_files"]) or "none"))


if __name__ == "__main__":
    main()
