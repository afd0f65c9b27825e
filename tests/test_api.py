"""The public namespace and the error tree."""

from __future__ import annotations

import inspect

import daskfarm
from daskfarm import exceptions


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(daskfarm) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(daskfarm, name))}
    assert set(daskfarm.__all__) - {"__version__"} == public - modules
    assert list(daskfarm.__all__) == sorted(daskfarm.__all__)


def test_every_public_name_is_importable_and_defined_by_daskfarm():
    for name in daskfarm.__all__:
        if name == "__version__":
            continue
        obj = getattr(daskfarm, name)
        module = getattr(obj, "__module__", None) or type(obj).__module__
        assert module.split(".")[0] == "daskfarm", (name, module)


def test_errors_derive_from_farm_error_and_the_builtin_they_refine():
    assert issubclass(daskfarm.FarmTypeError, TypeError)
    assert issubclass(daskfarm.FarmValueError, ValueError)
    assert issubclass(daskfarm.FarmClosedError, RuntimeError)
    assert issubclass(daskfarm.FarmConnectionError, ConnectionError)
    assert issubclass(daskfarm.WorkerImportError, ImportError)
    assert issubclass(daskfarm.StoreError, OSError)
    assert issubclass(daskfarm.AppMethodError, KeyError)
    assert issubclass(daskfarm.ScriptGlobalError, NameError)
    for cls in (daskfarm.AppMethodError, daskfarm.ScriptGlobalError):
        assert issubclass(cls, daskfarm.FarmError), cls
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if issubclass(cls, Warning):
            assert issubclass(cls, daskfarm.FarmWarning)
        else:
            assert issubclass(cls, daskfarm.FarmError), name


def test_public_callables_have_docstrings_with_examples():
    for obj in (daskfarm.Farm, daskfarm.Farm.map, daskfarm.Run, daskfarm.Reporter,
                daskfarm.DataManager, daskfarm.AppRunner):
        assert obj.__doc__ and "Examples" in obj.__doc__, obj
