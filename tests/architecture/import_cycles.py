#!/usr/bin/env python3
"""Finds import cycles between the files of each Rust crate under the given
folders (a crate: a folder with Cargo.toml and src/). An arrow runs from a
file to the file that defines what it names through `crate::…`, `super::…`,
`self::…` or a child module's path; a parent's `pub use child::…` (a facade
re-export), `mod` declarations and a file's `#[cfg(test)] mod tests` are
not arrows. Prints each cycle and exits 1 if there is one.
Usage: import_cycles.py DIR...
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_CHILD = re.compile(r"^\s*(pub(?:\([a-z]+\))?\s+)?use\s+([a-z_][a-z0-9_]*)::", re.M)


def crates(dirs):
    for d in dirs:
        for manifest in Path(d).rglob("Cargo.toml"):
            if "target" in manifest.parts or "node_modules" in manifest.parts:
                continue
            src = manifest.parent / "src"
            if src.is_dir():
                yield src


def module_of(src, file):
    """`a/b.rs` and `a/b/mod.rs` -> ('a', 'b'); lib.rs and main.rs -> ()."""
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # A file's unit tests (at its end, by the house's convention) are a
    # build of their own: what they name is not an arrow of the code.
    test = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\b", text)
    return text[: test.start()] if test else text


REEXPORT = re.compile(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]+);")


def reexported(m, text):
    """Each name `m` re-exports (`pub use a::b::{X, Y as Z}`), with the full
    path of what it names, from the crate's root."""
    out = {}
    for clause in REEXPORT.findall(text):
        clause = " ".join(clause.split())
        if "{" in clause:
            prefix, names = clause.split("{", 1)
            names = names.rstrip("}").split(",")
        else:
            prefix, names = "", [clause]
        prefix = [p for p in prefix.strip().rstrip(":").split("::") if p]
        for name in names:
            parts = prefix + [p for p in name.split(" as ")[0].strip().split("::") if p]
            if not parts or "{" in name or "*" in name:
                continue
            alias = name.split(" as ")[-1].strip().split("::")[-1]
            if parts[0] == "crate":
                path = parts[1:]
            elif parts[0] == "super":
                path = list(m[:-1]) + parts[1:]
            elif parts[0] == "self":
                path = list(m) + parts[1:]
            else:
                path = list(m) + parts
            out[alias] = path
    return out


def graph(src):
    files = {}
    for f in src.rglob("*.rs"):
        m = module_of(src, f)
        # A binary's main.rs is its own crate root: keep the library's.
        if m == () and f.name == "main.rs" and (src / "lib.rs").exists():
            continue
        files[m] = f
    edges = {m: set() for m in files}

    reexports = {m: reexported(m, strip_comments(f.read_text())) for m, f in files.items()}

    def resolve(parts, seen=0):
        for n in range(len(parts), -1, -1):
            m = tuple(parts[:n])
            if m in files:
                # A name a module only re-exports leads to where it is defined.
                if n < len(parts) and parts[n] in reexports[m] and seen < 8:
                    return resolve(reexports[m][parts[n]], seen + 1) or m
                return m
        return None

    for m, f in files.items():
        text = strip_comments(f.read_text())
        for kind, tail in PATH.findall(text):
            names = tail.split("::")[1:]
            if kind == "crate":
                base = []
            elif kind == "super":
                base = list(m[:-1])
                while names and names[0] == "super":
                    base, names = base[:-1], names[1:]
            else:
                base = list(m)
            target = resolve(base + names)
            if target is not None and target != m:
                edges[m].add(target)
        facade = {c for vis, c in USE_CHILD.findall(text) if vis.strip()}
        for child in set(re.findall(r"(?<![:\w])([a-z_][a-z0-9_]*)::", text)):
            target = m + (child,)
            if target in files and child not in facade:
                edges[m].add(target)
    return files, edges


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    found = 0
    for src in crates(sys.argv[1:]):
        files, edges = graph(src)
        for comp in cycles(edges):
            found += 1
            names = sorted(str(files[m]) for m in comp)
            print(f"import cycle: {' <-> '.join(names)}")
    print(f"import cycles: {found}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
