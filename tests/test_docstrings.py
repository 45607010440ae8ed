"""Every public name has a numpydoc docstring that documents its parameters and returns."""

import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

MODULES = [
    "skem", "skem.datasets", "skem.io", "skem.plotting", "skem.transcripts", "skem.samples", "skem.sequences",
    "skem.motifs", "skem.sequence_motifs",
]
#: Missing docstring, undocumented or unknown parameters, parameters or returns
#: without a description, no Returns section, no summary.
CHECKS = {"GL08", "PR01", "PR02", "PR07", "RT01", "RT03", "SS01"}


def _public_names():
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            yield f"{module_name}.{name}"
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if not member.startswith("_") and callable(value):
                        yield f"{module_name}.{name}.{member}"


def _is_record(qualified_name):
    """NamedTuples and dataclasses document their fields as Attributes, not Parameters."""
    module_name, _, name = qualified_name.rpartition(".")
    obj = getattr(importlib.import_module(module_name), name, None)
    return inspect.isclass(obj) and (hasattr(obj, "_fields") or hasattr(obj, "__dataclass_fields__"))


@pytest.mark.parametrize("name", sorted(set(_public_names())))
def test_public_docstring(name):
    errors = [
        (code, message)
        for code, message in numpydoc_validate.validate(name)["errors"]
        if code in CHECKS and not (code == "PR01" and _is_record(name))
    ]
    assert not errors, errors
