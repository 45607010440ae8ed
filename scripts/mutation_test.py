"""Mutation testing of skem: put small bugs into a module one at a time and see which ones the tests catch.

On demand, not in CI. A mutant is one small change of the module's syntax
tree -- an arithmetic operator swapped (``+``/``-``, ``*``/``/``, ...), a
comparison flipped or moved across its boundary (``<``/``<=``/``>``...),
``and``/``or`` swapped, a ``not`` or unary minus dropped, an integer
constant moved by one, a float constant doubled or zeroed, ``True``/``False``
swapped (a subscript index is a constant too), or a call statement deleted. Docstrings,
annotations, error messages (anything inside ``raise`` or a ``warnings.warn``
call) and ``__all__`` are left alone. A mutant is *killed* when the chosen
tests fail (or error, or exceed the timeout) with it, and *survives* when they
pass; survivors are printed with their line and change, to be killed by a new
test or explained as equivalent.

The tree under test is a snapshot of a git revision (``git archive``, so
work in progress in the checkout is neither mutated nor picked up) unpacked
into a temporary folder; the checkout is never touched. Each mutant is
written there, and the tests run in a child process forked from a parent that
has already imported numpy, scipy, scikit-learn, pandas and pytest (but not
skem), so a mutant costs the tests' own time plus about a tenth of a second.
One process at a time; ``OPENBLAS_NUM_THREADS=1``.

Examples
--------
::

    python scripts/mutation_test.py skem/_accel.py --tests tests/test_em.py tests/test_engine_reference.py
    python scripts/mutation_test.py skem/negbin.py --tests tests/test_negbin_reference.py \\
        --sample 150 --seed 0 --timeout 60
    python scripts/mutation_test.py skem/_em.py --list          # the mutants, without running
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import random
import shutil
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BINOP_SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.MatMult: ast.Mult,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}
_COMPARE_SWAPS = {
    ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt, ast.GtE), ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
}


@dataclass
class Mutant:
    index: int
    line: int
    description: str


def _is_docstring(node):
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _skipped_subtrees(tree):
    """Nodes whose subtrees are never mutated: messages, annotations, ``__all__``, docstrings."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            skipped.add(node)
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in {"warnings.warn", "print", "progress", "out"} or name.endswith("_print_row"):
                skipped.add(node)
        elif isinstance(node, ast.JoinedStr):
            skipped.add(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            skipped.add(node)
        elif isinstance(node, ast.AnnAssign):
            skipped.add(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if arg.annotation is not None:
                    skipped.add(arg.annotation)
            if node.returns is not None:
                skipped.add(node.returns)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.body and _is_docstring(node.body[0]):
                skipped.add(node.body[0])
    return skipped


def _mutations_of(node):
    """The mutations of one node: (description, function that applies it in place)."""
    found = []
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
        new = _BINOP_SWAPS[type(node.op)]
        found.append((f"{type(node.op).__name__} -> {new.__name__}",
                      lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP_SWAPS:
        new = _BINOP_SWAPS[type(node.op)]
        found.append((f"augmented {type(node.op).__name__} -> {new.__name__}",
                      lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.Compare):
        for position, op in enumerate(node.ops):
            for new in _COMPARE_SWAPS.get(type(op), ()):
                def apply(n, position=position, new=new):
                    n.ops[position] = new()
                found.append((f"{type(op).__name__} -> {new.__name__}", apply))
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        found.append((f"{type(node.op).__name__} -> {new.__name__}",
                      lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.Constant) and not isinstance(node.value, str):
        value = node.value
        if isinstance(value, bool):
            found.append((f"{value} -> {not value}", lambda n: setattr(n, "value", not n.value)))
        elif isinstance(value, int):
            found.append((f"{value} -> {value + 1}", lambda n: setattr(n, "value", n.value + 1)))
            if value != 0:
                found.append((f"{value} -> {value - 1}", lambda n: setattr(n, "value", n.value - 1)))
        elif isinstance(value, float):
            new = 1.0 if value == 0.0 else value * 2.0
            found.append((f"{value!r} -> {new!r}", lambda n, new=new: setattr(n, "value", new)))
    return found


def _statement_deletions(node):
    """A call used as a statement (``x.sort()``, ``np.maximum(..., out=...)``) replaced by ``pass``."""
    found = []
    for field in ("body", "orelse", "finalbody"):
        statements = getattr(node, field, None)
        if not isinstance(statements, list):
            continue
        for position, statement in enumerate(statements):
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                def apply(n, field=field, position=position):
                    getattr(n, field)[position] = ast.Pass()
                found.append((statement, f"delete `{ast.unparse(statement)[:60]}`", apply))
    return found


class _Points:
    """All mutation points of a module, in a fixed order (a walk of its tree)."""

    def __init__(self, source):
        self.source = source
        tree = ast.parse(source)
        skipped = _skipped_subtrees(tree)
        self.points = []  # (path to node, description, apply, line)
        self._collect(tree, (), skipped)

    def _collect(self, node, path, skipped):
        if node in skipped:
            return
        line = getattr(node, "lineno", 0)
        for description, apply in _mutations_of(node):
            self.points.append((path, description, apply, line))
        for statement, description, apply in _statement_deletions(node):
            if statement not in skipped:
                self.points.append((path, description, apply, statement.lineno))
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        self._collect_child(node, child, path + ((field, i),), skipped)
            elif isinstance(value, ast.AST):
                self._collect_child(node, value, path + ((field, None),), skipped)

    def _collect_child(self, parent, child, path, skipped):
        if isinstance(child, ast.UnaryOp) and isinstance(child.op, (ast.Not, ast.USub)) \
                and child not in skipped:
            field, i = path[-1]

            def apply(n, field=field, i=i):
                target = getattr(n, field)
                if i is None:
                    setattr(n, field, target.operand)
                else:
                    target[i] = target[i].operand
            self.points.append((path[:-1], f"drop {type(child.op).__name__}", apply, child.lineno))
        self._collect(child, path, skipped)

    def mutants(self):
        return [Mutant(i, line, description)
                for i, (_, description, _, line) in enumerate(self.points)]

    def source_of(self, index):
        tree = ast.parse(self.source)
        path, _, apply, _ = self.points[index]
        node = tree
        for field, i in path:
            node = getattr(node, field) if i is None else getattr(node, field)[i]
        apply(node)
        ast.fix_missing_locations(tree)
        return ast.unparse(tree)


# ------------------------------------------------------------------ running


def _snapshot(revision, destination):
    """Unpack ``git archive revision`` into ``destination``; returns the full commit id."""
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", revision], check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", commit], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return commit


def _preload():
    """Import what every test run needs, once, before forking (never skem itself)."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pytest  # noqa: F401
    import scipy.optimize  # noqa: F401
    import scipy.sparse  # noqa: F401
    import scipy.special  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.base  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.utils.estimator_checks  # noqa: F401

    try:
        import hypothesis  # noqa: F401
    except ImportError:
        pass


def _run_tests(workdir, tests, timeout, extra=()):
    """Run pytest on ``tests`` in a forked child; returns "passed", "failed" or "timeout"."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.chdir(workdir)
            sys.path.insert(0, workdir)
            sys.dont_write_bytecode = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest

            # The project's warning filters stay on: the engine's "objective decreased"
            # RuntimeWarning is an error in the tests, and one of the best oracles.
            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *extra, *tests])
            os._exit(0 if code == 0 else 1)
        except BaseException:
            os._exit(1)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="+", help="module files to mutate, e.g. skem/_em.py")
    parser.add_argument("--tests", nargs="+", default=["tests"], help="test files run on each mutant")
    parser.add_argument("--pytest-args", default="",
                        help='more pytest arguments, e.g. "-m \'not slow\'" or "-k dispersion"')
    parser.add_argument("--rev", default="HEAD", help="git revision to test (default: HEAD)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per mutant (default: 5 x the clean run, at least 20)")
    parser.add_argument("--sample", type=int, default=None, help="run a random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--lines", help="only mutants on these lines, e.g. 120-180")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="skem-mutants-")
    try:
        commit = _snapshot(args.rev, workdir)
        print(f"revision {commit} in {workdir}")
        if args.list:
            for module in args.modules:
                _mutate_module(workdir, module, args, timeout=None)
            return 0
        _preload()
        for name in args.tests:
            if not os.path.exists(os.path.join(workdir, name)):
                parser.error(f"{name} is not in revision {commit[:12]}")
        start = time.monotonic()
        args.extra = shlex.split(args.pytest_args)
        if _run_tests(workdir, args.tests, timeout=3600, extra=args.extra) != "passed":
            print("the tests fail without any mutant: fix that first", file=sys.stderr)
            return 2
        clean = time.monotonic() - start
        timeout = args.timeout or max(20.0, 5 * clean)
        print(f"clean run {clean:.1f}s; timeout {timeout:.0f}s per mutant; tests: {' '.join(args.tests)}")
        totals = {"killed": 0, "survived": 0, "timeout": 0}
        for module in args.modules:
            totals_module = _mutate_module(workdir, module, args, timeout)
            for key in totals:
                totals[key] += totals_module[key]
        ran = sum(totals.values())
        if len(args.modules) > 1 and ran:
            killed = totals["killed"] + totals["timeout"]
            print(f"\nALL: {killed}/{ran} killed ({100 * killed / ran:.1f} %), "
                  f"{totals['survived']} survived")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _mutate_module(workdir, module, args, timeout):
    path = os.path.join(workdir, module)
    with open(path) as handle:
        original = handle.read()
    points = _Points(original)
    mutants = points.mutants()
    if args.lines:
        low, _, high = args.lines.partition("-")
        mutants = [m for m in mutants if int(low) <= m.line <= int(high or low)]
    if args.sample is not None and args.sample < len(mutants):
        mutants = sorted(random.Random(args.seed).sample(mutants, args.sample), key=lambda m: m.index)
    print(f"\n{module}: {len(points.points)} mutants" +
          (f", running {len(mutants)}" if len(mutants) < len(points.points) else ""))
    if args.list:
        for mutant in mutants:
            print(f"  #{mutant.index:4d} line {mutant.line:4d}: {mutant.description}")
        return {"killed": 0, "survived": 0, "timeout": 0}
    counts = {"killed": 0, "survived": 0, "timeout": 0}
    survivors = []
    cache = os.path.join(os.path.dirname(path), "__pycache__")
    start = time.monotonic()
    try:
        for n, mutant in enumerate(mutants, 1):
            with open(path, "w") as handle:
                handle.write(points.source_of(mutant.index))
            shutil.rmtree(cache, ignore_errors=True)
            outcome = _run_tests(workdir, args.tests, timeout, args.extra)
            key = {"passed": "survived", "failed": "killed", "timeout": "timeout"}[outcome]
            counts[key] += 1
            if key == "survived":
                survivors.append(mutant)
            print(f"  [{n}/{len(mutants)}] #{mutant.index} line {mutant.line}: "
                  f"{mutant.description}: {key}", flush=True)
    finally:
        with open(path, "w") as handle:
            handle.write(original)
        shutil.rmtree(cache, ignore_errors=True)
    ran = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]
    rate = 100 * killed / ran if ran else float("nan")
    print(f"{module}: {killed}/{ran} killed ({rate:.1f} %; {counts['timeout']} by timeout), "
          f"{counts['survived']} survived, {time.monotonic() - start:.0f}s")
    for mutant in survivors:
        print(f"  SURVIVED #{mutant.index} {module}:{mutant.line}: {mutant.description}")
    return counts


if __name__ == "__main__":
    sys.exit(main())
