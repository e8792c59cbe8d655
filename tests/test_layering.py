"""Dependencies point one way: the core and the inference path import without torch, and importing is silent.

Each check runs in a fresh interpreter, so modules other tests imported do
not hide a violation. A meta-path finder makes the named packages
unimportable, as on a machine that never installed them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TORCH_FREE = (
    "knucaptcha",
    "knucaptcha.inference",
    "knucaptcha.litert",
    "knucaptcha.evaluate",
    "knucaptcha.agreement",
    "knucaptcha.quantize",
    "knucaptcha.collect",
    "knucaptcha.labelling",
    "knucaptcha.prelabels",
    "knucaptcha.fileops",
    "knucaptcha.web.app",
    "knucaptcha.web.labelling",
    "knucaptcha.cli",
)
"""The solve, serve, label, collect and int8-export paths: must import without torch."""

CORE = (
    "knucaptcha.errors",
    "knucaptcha.charset",
    "knucaptcha.spec",
    "knucaptcha.integrity",
    "knucaptcha.preprocess",
    "knucaptcha.ctc",
    "knucaptcha.labels",
    "knucaptcha.metrics",
    "knucaptcha.folder_stats",
    "knucaptcha.folder_spec",
    "knucaptcha.generator",
)
"""The numpy/Pillow core: must import without any runtime, web or CLI framework."""

HEAVY = ("torch", "onnxruntime", "fastapi", "typer", "click", "rich")
"""What the core may not import: training, inference runtime, web framework, CLI framework."""

_PROBE = r"""
import importlib, importlib.abc, io, json, sys, contextlib

blocked, modules, run_help = json.loads(sys.argv[1])


class Unimportable(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by the test)", name=fullname)
        return None


sys.meta_path.insert(0, Unimportable())
failed = {}
for module in modules:
    try:
        importlib.import_module(module)
    except Exception as error:
        failed[module] = f"{type(error).__name__}: {error}"
help_exit = None
if run_help:
    from knucaptcha.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["--help"])
        except SystemExit as done:
            help_exit = done.code
loaded = sorted({name.partition(".")[0] for name in sys.modules})
print(json.dumps({"failed": failed, "help_exit": help_exit, "loaded": loaded}))
"""


def probe(modules: tuple[str, ...], blocked: tuple[str, ...] = (), run_help: bool = False) -> dict:
    """Import ``modules`` in a fresh interpreter with ``blocked`` packages unimportable."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([list(blocked), list(modules), run_help])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_solve_path_does_not_load_torch() -> None:
    result = probe(TORCH_FREE, run_help=True)
    assert result["failed"] == {}
    assert result["help_exit"] == 0
    assert "torch" not in result["loaded"]


def test_solve_path_works_without_torch_installed() -> None:
    result = probe(TORCH_FREE, blocked=("torch",), run_help=True)
    assert result["failed"] == {}
    assert result["help_exit"] == 0


def test_core_loads_no_heavy_dependency() -> None:
    result = probe(CORE)
    assert result["failed"] == {}
    assert sorted(set(HEAVY) & set(result["loaded"])) == []


def test_core_works_without_heavy_dependencies_installed() -> None:
    assert probe(CORE, blocked=HEAVY)["failed"] == {}


@pytest.mark.parametrize("module", ["knucaptcha", *CORE])
def test_import_is_silent_and_leaves_warnings_alone(module: str) -> None:
    # numpy adds its own filters on import; load it first so only knucaptcha's doing is compared.
    script = (
        "import sys, warnings, numpy, PIL.Image\n"
        "filters, show = list(warnings.filters), warnings.showwarning\n"
        f"import {module}\n"
        "sys.exit(0 if (warnings.filters, warnings.showwarning) == (filters, show) else 3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, "importing changed the warning filters" if done.returncode == 3 else done.stderr
    assert (done.stdout, done.stderr) == ("", "")
