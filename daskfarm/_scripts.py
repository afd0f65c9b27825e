"""Tasks defined in a script run on the workers as they run in the script.

cloudpickle sends a function of ``__main__`` by value with only the globals its bytecode
names, and renames its code's file ``<dynamic-code>``. A forked ``multiprocessing.Pool`` has
the whole script instead, and libraries rely on that: Brian 2 looks up the names that appear
only inside equation strings (``"dv/dt = (v0 - v) / tau : volt"``) in its caller's globals. So
for a script-defined task this module

- ships the script's other module-level names with the task, into the same globals dict the
  task's functions see on the worker (names importable from a library, such as the units of
  ``from brian2 import *``, travel as references, so a worker uses its own copy of the library's
  objects); a name that is big or cannot be pickled is left out, and only a task that then
  uses it fails, with a :class:`ScriptGlobalError` that says which and why;
- gives the code back its script's file name and registers the script's source on the worker,
  so a traceback shows ``File "/path/sweep.py", line 17`` and the source line, also on a
  remote worker that never had the file;
- turns two Brian 2 failures into messages that say what to do: a pickling error names the
  global that failed (a Run named ``run`` hides Brian's ``run()``), and Brian's standalone
  mode, which cannot call Python, says what to pass as ``report=``.

The engine calls :func:`dumps`, :func:`pickling_hint` and :func:`explained`; nothing else here
is used from outside.
"""

from __future__ import annotations

import importlib
import io
import linecache
import logging
import os
import sys
import types
from typing import Any

import cloudpickle

from daskfarm.exceptions import FarmTypeError, ScriptGlobalError

logger = logging.getLogger(__name__)

# Left out: globals over this size pickled, and any beyond this total. The task's bytes travel
# with every batch, so a big array belongs in the items or the task's arguments.
GLOBAL_LIMIT = 1_000_000
TOTAL_LIMIT = 4_000_000
# A script longer than this is not sent for tracebacks (it is not a script then).
SOURCE_LIMIT = 2_000_000
_DYNAMIC = "<dynamic-code>"
_OMITTED = "_daskfarm_omitted_globals"  # set on the TaskSpec on the worker
# Interactive sessions' own names, never meant for a task
_SESSION_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_NOT_SENT_PACKAGES = ("daskfarm", "distributed", "tornado", "asyncio")
_GENERIC_HINT = ("Define the task at module level (not inside another function) and avoid "
                 "capturing open files, locks or clients.")


# -- the client side --------------------------------------------------------------------------

def dumps(spec: Any) -> bytes:
    """Pickle a TaskSpec; for a script-defined task, with its script's globals and source."""
    namespace = _script_namespace(spec.task)
    if namespace is None:
        return cloudpickle.dumps(spec, protocol=5)
    refs = _library_references(namespace)
    shipped, omitted = _select_globals(namespace, refs)
    filename = namespace.get("__file__")
    source = _read_source(filename)
    # a function whose globals are the script's: cloudpickle gives it the same globals dict
    # on the worker as the task's own functions, which is where the names must go
    probe = types.FunctionType(_probe.__code__, namespace, "_daskfarm_script_globals")
    bundle = _Bundle(spec, probe, shipped, omitted, filename and os.path.abspath(filename),
                     source)
    buffer = io.BytesIO()
    _Pickler(buffer, refs).dump(bundle)
    return buffer.getvalue()


def _probe() -> None:
    """The code of the globals probe (never called)."""


def _candidates(task: Any) -> list:
    """The task, a wrapper's ``func`` (partial, pydidas' calls), a callable object's class."""
    found = [task, getattr(task, "func", None)]
    if not isinstance(task, (type, types.FunctionType)):
        found.append(type(task))
    return [c for c in found if c is not None]


def _from_main(task: Any) -> bool:
    return any(_attribute(c, "__module__") == "__main__" for c in _candidates(task))


def _script_namespace(task: Any) -> dict | None:
    """The globals of the script that defined the task, or None if no script did."""
    for value in _candidates(task):
        if _attribute(value, "__module__") != "__main__":
            continue
        if isinstance(value, types.FunctionType):
            return value.__globals__
        if isinstance(value, type):
            for member in vars(value).values():
                if isinstance(member, types.FunctionType):
                    return member.__globals__
    main = sys.modules.get("__main__")
    return vars(main) if main is not None and _from_main(task) else None


def _library_references(namespace: dict) -> dict[int, tuple[str, str]]:
    """``id(value) -> (module, name)`` for the script's globals that are objects of an
    importable module under the same name (``mV`` from ``from brian2 import *``)."""
    modules: set[str] = set()
    for value in namespace.values():
        name = value.__name__ if isinstance(value, types.ModuleType) else \
            _attribute(value, "__module__")
        if isinstance(name, str) and name != "__main__" and name in sys.modules:
            modules.add(name)
            modules.add(name.partition(".")[0])
    # the top-level packages first: `brian2.mV` rather than `brian2.units.allunits.mV`
    order = sorted((m for m in modules if m in sys.modules), key=lambda m: (m.count("."), m))
    refs: dict[int, tuple[str, str]] = {}
    for name, value in namespace.items():
        if name.startswith("_") or isinstance(value, (types.ModuleType, *_PLAIN)):
            continue  # sent well as they are
        for module in order:
            if getattr(sys.modules[module], name, None) is value:
                refs[id(value)] = (module, name)
                break
    return refs


_PLAIN = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _select_globals(namespace: dict, refs: dict) -> tuple[dict, dict]:
    """The script's globals to send, and the names left out with the reason."""
    shipped: dict[str, Any] = {}
    omitted: dict[str, str] = {}
    total = 0
    for name, value in namespace.items():
        if name.startswith("_") or name in _SESSION_NAMES:
            continue
        ref = refs.get(id(value))
        if ref is not None:  # a library's object (also a dict, which pickle never asks about)
            shipped[name] = _LibraryRef(*ref)
            continue
        kind = type(value)
        if kind.__module__.partition(".")[0] in _NOT_SENT_PACKAGES:
            omitted[name] = f"it is a {kind.__module__}.{kind.__qualname__}, never sent"
            continue
        nbytes = _attribute(value, "nbytes")
        if isinstance(nbytes, int) and nbytes > GLOBAL_LIMIT:
            omitted[name] = f"it is {_size(nbytes)}, over the {_size(GLOBAL_LIMIT)} limit"
            continue
        try:
            buffer = io.BytesIO()
            _Pickler(buffer, refs).dump(value)
            size = buffer.tell()
        except Exception as exc:
            omitted[name] = f"it cannot be pickled ({type(exc).__name__}: {exc})"
            continue
        if size > GLOBAL_LIMIT:
            omitted[name] = f"it is {_size(size)} pickled, over the {_size(GLOBAL_LIMIT)} limit"
        elif total + size > TOTAL_LIMIT:
            omitted[name] = (f"the script's globals sent with the task reached the "
                             f"{_size(TOTAL_LIMIT)} limit")
        else:
            shipped[name] = value
            total += size
    return shipped, omitted


def _attribute(value: Any, name: str) -> Any:
    try:
        return getattr(value, name, None)
    except Exception:  # a proxy or lazy object that fails on lookup
        return None


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 100_000 else f"{nbytes / 1e3:.0f} kB"


def _read_source(filename: str | None) -> str | None:
    if not filename or not filename.endswith(".py"):
        return None
    try:
        if os.path.getsize(filename) > SOURCE_LIMIT:
            return None
        with open(filename, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with the script's library objects sent as references, and Brian 2's units
    sent as units (Brian pickles a Unit as a plain Quantity, which breaks a TimedArray)."""

    def __init__(self, file: Any, refs: dict[int, tuple[str, str]]):
        super().__init__(file, protocol=5)
        self._refs = refs
        self._special = _special_reducers()

    def reducer_override(self, obj: Any) -> Any:
        ref = self._refs.get(id(obj))
        if ref is not None:
            return _import_attribute, ref
        special = self._special.get(type(obj))
        if special is not None:
            return special(obj)
        if type(obj) is types.ModuleType and sys.modules.get(obj.__name__) is obj and \
                obj.__name__ != "__main__" and getattr(obj, "__file__", None):
            # imported on the worker at first use, not as the task arrives: a script's
            # `import` of a slow library that a task never touches costs the workers nothing
            return _lazy_module, (obj.__name__,)
        return super().reducer_override(obj)


def _special_reducers() -> dict:
    units = sys.modules.get("brian2.units.fundamentalunits")
    if units is None:
        return {}
    return {units.Unit: _reduce_brian_unit}


def _reduce_brian_unit(unit: Any) -> tuple:
    import numpy

    return _make_brian_unit, (float(numpy.asarray(unit)), unit.dim, unit.scale, unit._name,
                              unit._dispname, unit._latexname, unit.iscompound)


def _make_brian_unit(value, dim, scale, name, dispname, latexname, iscompound) -> Any:
    from brian2.units.fundamentalunits import Unit

    return Unit(value, dim=dim, scale=scale, name=name, dispname=dispname,
                latexname=latexname, iscompound=iscompound)


def _import_attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


class _LibraryRef:
    """Unpickles into ``module.name`` on the worker."""

    def __init__(self, module: str, name: str):
        self.ref = (module, name)

    def __reduce__(self):
        return _import_attribute, self.ref


def _lazy_module(name: str) -> types.ModuleType:
    """The module if the worker has it, else a :class:`_LazyModule` that imports it."""
    module = sys.modules.get(name)
    return module if module is not None else _LazyModule(name)


class _LazyModule(types.ModuleType):
    """A module global of the script on a worker: imported on first attribute access."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


class _Bundle:
    """Unpickles into the TaskSpec itself, with the script's globals installed."""

    def __init__(self, spec, probe, shipped, omitted, filename, source):
        self.args = (spec, probe, shipped, omitted, filename, source)

    def __reduce__(self):
        return _unpack, self.args


# -- the worker side --------------------------------------------------------------------------

def _unpack(spec: Any, probe: types.FunctionType, shipped: dict, omitted: dict,
            filename: str | None, source: str | None) -> Any:
    namespace = probe.__globals__
    for name, value in shipped.items():
        namespace.setdefault(name, value)  # what the bytecode named came with the task
    if omitted:
        setattr(spec, _OMITTED, omitted)
    if filename:
        if source is not None:
            # mtime None: linecache keeps it although the file may not exist here
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        seen: set[int] = set()
        for value in [spec.task, getattr(spec.task, "func", None), type(spec.task),
                      *namespace.values()]:
            _restore_filename(value, filename, seen)
    return spec


def _restore_filename(value: Any, filename: str, seen: set[int]) -> None:
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, types.FunctionType):
        if value.__code__.co_filename == _DYNAMIC:
            value.__code__ = _with_filename(value.__code__, filename)
    elif isinstance(value, type) and value.__module__ == "__main__":
        for member in vars(value).values():
            for func in (member, getattr(member, "__func__", None),
                         getattr(member, "fget", None), getattr(member, "fset", None)):
                if func is not None:
                    _restore_filename(func, filename, seen)


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def explained(call: Any, spec: Any) -> Any:
    """``call``, or a wrapper that turns the failures this module knows into clear errors:
    a left-out script global used by the task, Brian 2's standalone ``report=``."""
    omitted = getattr(spec, _OMITTED, None) or {}
    if not omitted and not spec.pass_report:
        return call

    def explained_call(item: Any) -> Any:
        try:
            return call(item)
        except Exception as exc:
            better = _explain(exc, omitted)
            if better is None:
                raise
            raise better from exc

    return explained_call


def _explain(exc: Exception, omitted: dict[str, str]) -> Exception | None:
    text = str(exc)
    for name, reason in omitted.items():
        if (isinstance(exc, NameError) and getattr(exc, "name", None) == name) \
                or f'identifier "{name}" could not be resolved' in text:
            return ScriptGlobalError(
                f"the task uses {name!r}, a module-level name of its script that was not sent "
                f"to the workers: {reason}. Pass it to the task as an argument (initargs for a "
                "class task), or create it inside the task"
            )
    if isinstance(exc, TypeError) and text.startswith("report argument has to be either"):
        return FarmTypeError(
            "Brian 2's standalone mode (set_device('cpp_standalone')) runs compiled code that "
            "cannot call daskfarm's report: pass report='text' there (Brian's progress lines "
            "go to the worker's output) or leave report out; daskfarm's report=report works in "
            f"Brian's runtime mode. Brian said: {text}"
        )
    return None


# -- pickling errors --------------------------------------------------------------------------

def pickling_hint(task: Any) -> str:
    """The advice for a task that cannot be pickled: which global of the script failed, when
    one did, else the general advice."""
    if not _from_main(task):
        return _GENERIC_HINT
    for name, value in _named_globals(task):
        try:
            cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            kind = type(value)
            what = f"{kind.__module__}.{kind.__qualname__}"
            hint = (f"The task uses the script's global {name!r}, a {what}, which cannot be "
                    f"pickled ({type(exc).__name__}: {exc}).")
            brian2 = sys.modules.get("brian2")
            if brian2 is not None and hasattr(brian2, name):
                return (f"{hint} That name hides brian2's {name}() that the task means: give "
                        f"the {kind.__qualname__} another name (say, `sweep = farm.map(...)`).")
            return (f"{hint} Pass what the task needs as an argument, or create it inside the "
                    "task.")
    return _GENERIC_HINT


def _named_globals(task: Any):
    """(name, value) of the globals the task's script code names, as cloudpickle sends them."""
    funcs: list[types.FunctionType] = []
    for value in _candidates(task):
        if isinstance(value, types.FunctionType):
            funcs.append(value)
        elif isinstance(value, type) and value.__module__ == "__main__":
            funcs += [m for m in vars(value).values() if isinstance(m, types.FunctionType)]
    seen: set[str] = set()
    for func in funcs:
        for name in _code_names(func.__code__):
            if name not in seen and name in func.__globals__:
                seen.add(name)
                yield name, func.__globals__[name]


def _code_names(code: types.CodeType):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)
