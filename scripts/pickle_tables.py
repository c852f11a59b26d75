#!/usr/bin/env python3
"""Generates crates/mlsec-scan-model/src/generated.rs, the tables the pickle policy derives
mechanically from CPython rather than by hand:

1. COMPAT_MODULES and COMPAT_NAMES: CPython's `_compat_pickle` mappings. `pickle.Unpickler`
   applies them to protocol 0-2 streams (`fix_imports=True`), so `__builtin__.xrange` loads
   `builtins.range` and `commands.getoutput` loads `subprocess.getoutput`. Taken from the running
   interpreter.

2. STDLIB_REACH: every standard-library function, method and class that reaches a
   code-execution, process, file-write, network or nested-loader primitive, directly or through
   other standard-library code. The scanner treats them as dangerous globals: a hand list of
   gadgets (`_osx_support._read_output`, `logging.FileHandler`) always trails. Found statically:
   each module is parsed with `ast` (never imported), names are resolved through its imports,
   `self.method` through the class and its bases, a class stands for its `__new__`, `__init__`
   and `__setstate__` (what unpickling runs), and reach is propagated over the call graph to a
   fixed point. Each entry keeps the first primitive it reaches, for review.

Usage (the committed table was made from CPython 3.11.7 and Debian's 3.13.5 standard library):
    curl -sO http://deb.debian.org/debian/pool/main/p/python3.13/libpython3.13-stdlib_3.13.5-2+deb13u5_amd64.deb
    dpkg-deb -x libpython3.13-stdlib_3.13.5-2+deb13u5_amd64.deb /tmp/py313
    python3 scripts/pickle_tables.py "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
        /tmp/py313/usr/lib/python3.13 > crates/mlsec-scan-model/src/generated.rs

With no directory, the running interpreter's standard library is read. Each directory is solved
on its own and the union is written. What was read, and files whose syntax is newer than the
running interpreter's parser, are reported on stderr; the output is sorted and stable.
"""

import _compat_pickle
import ast
import os
import sys
import sysconfig
from collections import defaultdict

# Categories, strongest first: an entry keeps the strongest it reaches.
SHELL, EXEC, LOADER, NET, FILE = "SHELL", "EXEC", "LOADER", "NET", "FILE"
ORDER = [SHELL, EXEC, LOADER, NET, FILE]

# Primitives, by fully qualified name.
SINKS = {}
for n in ["system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
          "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
          "spawnvpe", "posix_spawn", "posix_spawnp", "startfile", "forkpty"]:
    SINKS[f"os.{n}"] = SHELL
    SINKS[f"posix.{n}"] = SHELL
for n in ["Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"]:
    SINKS[f"subprocess.{n}"] = SHELL
SINKS["pty.spawn"] = SHELL
SINKS["_posixsubprocess.fork_exec"] = SHELL
for n in ["eval", "exec", "__import__", "execfile"]:
    SINKS[f"builtins.{n}"] = EXEC
for n in ["importlib.import_module", "importlib.__import__", "runpy.run_path", "runpy.run_module",
          "runpy._run_code", "runpy._run_module_code", "types.FunctionType", "ctypes.CDLL",
          "ctypes.cdll", "ctypes.PyDLL", "ctypes.pythonapi", "_imp.create_dynamic",
          "_imp.exec_dynamic", "importlib.util.spec_from_file_location",
          "importlib.machinery.SourceFileLoader", "importlib.machinery.ExtensionFileLoader"]:
    SINKS[n] = EXEC
for n in ["pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
          "marshal.load", "marshal.loads", "shelve.open", "shelve.Shelf"]:
    SINKS[n] = LOADER
for n in ["socket.socket", "socket.create_connection", "socket.create_server", "socket.fromfd",
          "_socket.socket", "urllib.request.urlopen", "urllib.request.urlretrieve",
          "urllib.request.build_opener", "http.client.HTTPConnection",
          "http.client.HTTPSConnection", "ftplib.FTP", "smtplib.SMTP", "smtplib.SMTP_SSL",
          "poplib.POP3", "imaplib.IMAP4", "telnetlib.Telnet", "nntplib.NNTP",
          "xmlrpc.client.ServerProxy", "socketserver.TCPServer", "socketserver.UDPServer",
          "webbrowser.open", "webbrowser.open_new", "webbrowser.open_new_tab"]:
    SINKS[n] = NET
for n in ["remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
          "ftruncate", "chmod", "lchmod", "chown", "lchown", "mkdir", "makedirs", "symlink",
          "link", "mkfifo", "mknod", "write", "pwrite", "writev", "putenv", "unsetenv", "kill",
          "killpg", "chdir", "chroot", "setuid", "setgid"]:
    SINKS[f"os.{n}"] = FILE
for n in ["rmtree", "move", "copy", "copy2", "copyfile", "copytree", "copymode", "copystat",
          "chown", "make_archive", "unpack_archive"]:
    SINKS[f"shutil.{n}"] = FILE

# Called with a mode: a primitive only when the mode writes (or is not a literal).
OPENERS = {"builtins.open", "io.open", "_io.open", "codecs.open", "os.fdopen", "io.FileIO",
           "_io.FileIO", "gzip.open", "bz2.open", "lzma.open", "tarfile.open", "zipfile.ZipFile",
           "dbm.open"}
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC")

# Reviewed: reach found statically that unpickling cannot turn into a gadget. Each says why.
NOT_GADGETS = {
    "zoneinfo._zoneinfo.ZoneInfo": "imports only tzdata.zoneinfo resources named by the key",
    "zoneinfo._zoneinfo.ZoneInfo.__new__": "as ZoneInfo",
    "zoneinfo._zoneinfo.ZoneInfo._new_instance": "as ZoneInfo",
    "zoneinfo._zoneinfo.ZoneInfo._unpickle": "how ZoneInfo pickles itself; as ZoneInfo",
    "zoneinfo._zoneinfo.ZoneInfo.no_cache": "as ZoneInfo",
    "zoneinfo._common.load_tzdata": "as ZoneInfo",
}

BUILTIN_NAMES = {"eval", "exec", "__import__", "open", "execfile"}

# Not inventoried: packages the policy denies whole, and test suites (the policy treats CPython's
# test package by name).
SKIP_TOP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages",
            "dist-packages", "config-3.11-x86_64-linux-gnu", "__pycache__", "venv", "distutils",
            "pydoc_data"}
CLASS_ENTRY = ("__new__", "__init__", "__setstate__", "__post_init__")


def modules(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        parts = [] if rel == "." else rel.split(os.sep)
        if parts and (parts[0] in SKIP_TOP or parts[0].startswith("config-")):
            dirnames[:] = []
            continue
        if any(p in ("tests", "test", "idle_test", "__pycache__") for p in parts):
            dirnames[:] = []
            continue
        dirnames.sort()
        for f in sorted(filenames):
            if not f.endswith(".py"):
                continue
            stem = f[:-3]
            if not parts and stem in SKIP_TOP:
                continue
            name = ".".join(parts + ([] if stem == "__init__" else [stem]))
            if name:
                yield name, os.path.join(dirpath, f), stem == "__init__"


class Module:
    def __init__(self, name, is_pkg):
        self.name = name
        self.package = name if is_pkg else name.rpartition(".")[0]
        self.env = {}  # local name -> qualified name
        self.defs = set()


class Graph:
    def __init__(self):
        self.mods = {}
        self.edges = defaultdict(set)  # node -> referenced qualified names
        self.direct = {}  # node -> (category, primitive)
        self.bases = {}  # class node -> [qualified base names]
        self.methods = defaultdict(set)  # class node -> method names
        self.nodes = set()
        self.classes = set()
        self.aliases = {}  # `Class.attr = open` and similar class-body bindings
        self.called = defaultdict(set)  # node -> names called or passed as callbacks

    def add_module(self, name, path, is_pkg, failures):
        try:
            with open(path, "rb") as fh:
                tree = ast.parse(fh.read(), filename=path)
        except (SyntaxError, ValueError) as e:
            failures.append(f"{path}: {e.__class__.__name__}: {e}")
            return
        mod = Module(name, is_pkg)
        self.mods[name] = mod
        for node in tree.body:
            self.bind_imports(mod, node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                mod.defs.add(node.name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.bind_imports(mod, node, overwrite=False)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.add_function(mod, f"{name}.{node.name}", node, None)
            elif isinstance(node, ast.ClassDef):
                self.add_class(mod, f"{name}.{node.name}", node)

    def bind_imports(self, mod, node, overwrite=True):
        def bind(k, v):
            if overwrite or k not in mod.env:
                mod.env[k] = v

        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    bind(a.asname, a.name)
                else:
                    top = a.name.split(".")[0]
                    bind(top, top)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.package.split(".") if mod.package else []
                pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                if a.name == "*":
                    continue
                bind(a.asname or a.name, f"{base}.{a.name}" if base else a.name)

    def add_class(self, mod, qual, node):
        self.nodes.add(qual)
        self.classes.add(qual)
        self.bases[qual] = [q for q in (self.resolve_expr(mod, b, None, set()) for b in node.bases) if q]
        # `self._builtin_open = open` in any method: the attribute is that name.
        for item in node.body:
            if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            params = {a.arg for a in item.args.args + item.args.kwonlyargs + item.args.posonlyargs}
            for sub in ast.walk(item):
                if (isinstance(sub, ast.Assign) and isinstance(sub.value, (ast.Name, ast.Attribute))
                        and not (isinstance(sub.value, ast.Name) and sub.value.id in params)):
                    for t in sub.targets:
                        if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                                and t.value.id == "self"):
                            target = self.resolve_expr(mod, sub.value, None, params - {"self"})
                            if target:
                                self.aliases.setdefault(f"{qual}.{t.attr}", target)
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.methods[qual].add(item.name)
                self.add_function(mod, f"{qual}.{item.name}", item, qual)
            elif isinstance(item, ast.ClassDef):
                self.add_class(mod, f"{qual}.{item.name}", item)
            elif isinstance(item, ast.Assign) and isinstance(item.value, (ast.Name, ast.Attribute)):
                target = self.resolve_expr(mod, item.value, None, set())
                for t in item.targets:
                    if target and isinstance(t, ast.Name):
                        self.aliases[f"{qual}.{t.id}"] = target

    def add_function(self, mod, qual, node, cls):
        self.nodes.add(qual)
        local = {a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs}
        for extra in (node.args.vararg, node.args.kwarg):
            if extra:
                local.add(extra.arg)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                local.add(sub.id)
        # `open_func = self._builtin_open`: a local bound once to a resolvable name is that name.
        bound = defaultdict(list)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0], ast.Name):
                bound[sub.targets[0].id].append(sub.value)
        alias = {}
        for k, vals in bound.items():
            if len(vals) == 1 and isinstance(vals[0], (ast.Name, ast.Attribute)):
                t = self.resolve_expr(mod, vals[0], cls, local - {k} if k not in ("self", "cls") else local)
                if t:
                    alias[k] = self.canon_alias(t)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                target = self.resolve_expr(mod, sub.func, cls, local, alias)
                if target in OPENERS or target == "os.open":
                    if self.writes(target, sub):
                        self.note(qual, FILE, target)
                    continue
            if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(sub.ctx, ast.Load):
                target = self.resolve_expr(mod, sub, cls, local, alias)
                if target and target not in OPENERS and target != "os.open":
                    self.edges[qual].add(target)
        # A primitive counts where it is called or handed on as a callback, not where it is only
        # compared against (`isinstance(f, types.FunctionType)`).
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Call):
                continue
            callee = self.resolve_expr(mod, sub.func, cls, local, alias)
            if callee in ("builtins.isinstance", "builtins.issubclass") or (
                isinstance(sub.func, ast.Name) and sub.func.id in ("isinstance", "issubclass")
            ):
                continue
            for expr in [sub.func] + list(sub.args) + [k.value for k in sub.keywords]:
                if isinstance(expr, ast.Starred):
                    expr = expr.value
                if isinstance(expr, (ast.Name, ast.Attribute)):
                    target = self.resolve_expr(mod, expr, cls, local, alias)
                    if target:
                        self.called[qual].add(target)

    @staticmethod
    def writes(target, call):
        if target == "os.open":
            return any(f in ast.unparse(call) for f in WRITE_FLAGS)
        if target == "zipfile.ZipFile" or target == "tarfile.open":
            idx = 1
        else:
            idx = 1
        mode = call.args[idx] if len(call.args) > idx else None
        for kw in call.keywords:
            if kw.arg == "mode":
                mode = kw.value
        if mode is None:
            return False
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
            return any(c in mode.value for c in "wax+")
        return True

    def note(self, qual, cat, prim):
        old = self.direct.get(qual)
        if old is None or ORDER.index(cat) < ORDER.index(old[0]):
            self.direct[qual] = (cat, prim)

    def canon_alias(self, qual):
        return self.aliases.get(qual, qual)

    def resolve_expr(self, mod, expr, cls, local, alias=None):
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        head = expr.id
        parts.reverse()
        if head in ("self", "cls") and cls and head in local:
            return self.canon_alias(".".join([cls] + parts)) if parts else None
        if alias and head in alias:
            return self.canon_alias(".".join([alias[head]] + parts))
        if head in local:
            return None
        if head in mod.env:
            base = mod.env[head]
        elif head in mod.defs:
            base = f"{mod.name}.{head}"
        elif head in BUILTIN_NAMES:
            base = f"builtins.{head}"
        else:
            return None
        return ".".join([base] + parts)

    def canon(self, qual, depth=0):
        """Follows re-exports (`pkg.f` imported into pkg from pkg._impl) to a defined node."""
        if qual in self.nodes or depth > 8:
            return qual
        parts = qual.split(".")
        for i in range(len(parts) - 1, 0, -1):
            mname = ".".join(parts[:i])
            mod = self.mods.get(mname)
            if mod is None:
                continue
            head = parts[i]
            if head in mod.env and mod.env[head] != qual:
                return self.canon(".".join([mod.env[head]] + parts[i + 1:]), depth + 1)
            break
        return qual

    def lookup_method(self, cls, name, seen=None):
        seen = seen or set()
        if cls in seen:
            return None
        seen.add(cls)
        if name in self.methods.get(cls, ()):
            return f"{cls}.{name}"
        for b in self.bases.get(cls, ()):
            found = self.lookup_method(self.canon(b), name, seen)
            if found:
                return found
        return None

    def targets(self, node):
        """What a node runs when reached: its references, and for a class its entry methods."""
        out = set()
        if node in self.classes:
            for m in CLASS_ENTRY:
                found = self.lookup_method(node, m)
                if found:
                    out.add(found)
        for ref in self.edges.get(node, ()):
            ref = self.canon(ref)
            if ref in self.nodes:
                out.add(ref)
                continue
            # `self.helper` defined on a base class.
            head, _, last = ref.rpartition(".")
            if head in self.classes:
                found = self.lookup_method(head, last)
                if found:
                    out.add(found)
        return out

    def sinks_of(self, node):
        best = self.direct.get(node)
        for ref in self.called.get(node, ()):
            for cand in (ref, self.canon(ref)):
                cat = SINKS.get(cand)
                if cat and (best is None or ORDER.index(cat) < ORDER.index(best[0])):
                    best = (cat, cand)
        return best

    def solve(self):
        reach = {}
        for n in self.nodes:
            s = self.sinks_of(n)
            if s:
                reach[n] = s
        succ = {n: self.targets(n) for n in self.nodes}
        changed = True
        while changed:
            changed = False
            for n in sorted(self.nodes):
                best = reach.get(n)
                for t in succ[n]:
                    r = reach.get(t)
                    if r and (best is None or ORDER.index(r[0]) < ORDER.index(best[0])):
                        best = (r[0], f"{t} -> {r[1]}" if "->" not in r[1] else f"{t} -> ...")
                if best and reach.get(n) != best and (
                    n not in reach or ORDER.index(best[0]) < ORDER.index(reach[n][0])
                ):
                    reach[n] = best
                    changed = True
        return reach


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    roots = sys.argv[1:] or [sysconfig.get_paths()["stdlib"]]
    failures = []
    reach = {}
    for root in roots:
        g = Graph()
        count = 0
        for name, path, is_pkg in modules(root):
            g.add_module(name, path, is_pkg, failures)
            count += 1
        found = {n: r for n, r in g.solve().items() if n not in NOT_GADGETS}
        print(f"{root}: {count} module files, {len(g.nodes)} definitions, {len(found)} reach a "
              f"primitive", file=sys.stderr)
        for n, r in found.items():
            if n not in reach or ORDER.index(r[0]) < ORDER.index(reach[n][0]):
                reach[n] = r
    print(f"union: {len(reach)} definitions reach a primitive", file=sys.stderr)
    for f in failures:
        print(f"not parsed: {f}", file=sys.stderr)

    out = sys.stdout
    out.write("// @generated by scripts/pickle_tables.py from CPython's standard library and\n")
    out.write("// `_compat_pickle`; do not edit. Regenerate with the command in that script.\n\n")
    out.write("use crate::policy::Reach;\n\n")
    out.write("/// `_compat_pickle.IMPORT_MAPPING`: Python 2 module names protocol 0-2 streams load\n")
    out.write("/// as Python 3 modules. Sorted by the first field.\n")
    out.write("pub static COMPAT_MODULES: &[(&str, &str)] = &[\n")
    for k, v in sorted(_compat_pickle.IMPORT_MAPPING.items()):
        out.write(f"    ({rust_str(k)}, {rust_str(v)}),\n")
    out.write("];\n\n")
    out.write("/// A (module, name) pair.\n")
    out.write("pub type QualName = (&'static str, &'static str);\n\n")
    out.write("/// `_compat_pickle.NAME_MAPPING`: (module, name) pairs renamed on load. Sorted.\n")
    out.write("pub static COMPAT_NAMES: &[(QualName, QualName)] = &[\n")
    for (m, n), (m2, n2) in sorted(_compat_pickle.NAME_MAPPING.items()):
        out.write(f"    (({rust_str(m)}, {rust_str(n)}), ({rust_str(m2)}, {rust_str(n2)})),\n")
    out.write("];\n\n")
    out.write("/// Standard-library definitions that reach a primitive: (qualified name, what it\n")
    out.write("/// reaches, the path to the primitive). Sorted by name for binary search.\n")
    out.write("pub static STDLIB_REACH: &[(&str, Reach, &str)] = &[\n")
    for n in sorted(reach):
        cat, via = reach[n]
        out.write(f"    ({rust_str(n)}, Reach::{cat.title()}, {rust_str(via)}),\n")
    out.write("];\n")


if __name__ == "__main__":
    main()
