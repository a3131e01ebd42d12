"""Packaging: import boundaries, the npe2 manifest, the built wheel and the CLI entry points.

Tests marked "INTEGRATION" check that the manifest and the CLI point at modules that the
other parts of the package provide (widgets, reader/writer, sub-commands); they fail with
the name of whatever is missing until every part has landed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "napari_selfdenoise"
FORBIDDEN = ("napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")
CORE_CONTRACT = ("axes", "config", "events", "device", "bundle", "samples")


def _run(args: list, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _python(code: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", code])


def _manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_file(REPO / "napari.yaml")


# ------------------------------------------------------------------ import boundaries


def test_core_imports_no_gui_at_run_time():
    """Import every module of ``core`` in a fresh interpreter: no napari / Qt / magicgui."""
    code = f"""
import importlib, json, pkgutil, sys
import napari_selfdenoise.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, core.__name__ + ".")]
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
print(json.dumps({{"modules": names, "bad": bad}}))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    imported = {name.rsplit(".", 1)[-1] for name in result["modules"]}
    assert set(CORE_CONTRACT) <= imported
    assert result["bad"] == [], f"core pulled in GUI modules: {result['bad']}"


def _gui_imports(path: Path) -> list[str]:
    """``module (line N)`` for every GUI import anywhere in ``path`` (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        found += [f"{n} (line {node.lineno})" for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def test_core_source_has_no_gui_imports():
    """A static scan also catches imports hidden in functions that no test calls."""
    files = sorted((PACKAGE / "core").rglob("*.py"))
    assert len(files) >= len(CORE_CONTRACT)
    offenders = {str(f.relative_to(PACKAGE)): hits for f in files if (hits := _gui_imports(f))}
    assert offenders == {}


def test_static_scan_detects_gui_imports(tmp_path):
    """The scanner itself finds every form of import (so the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nimport napari.layers\ndef f():\n    from qtpy import QtCore\n"
                   "    import importlib\n    importlib.import_module('magicgui')\n"
                   "from PyQt6.QtWidgets import QWidget\n")
    assert sorted(hit.split()[0] for hit in _gui_imports(bad)) == [
        "PyQt6.QtWidgets", "magicgui", "napari.layers", "qtpy"]


MAX_MODULE_LINES = 400  # the style rule (modules <= ~400 lines)


def test_every_module_is_at_most_400_lines():
    """A module past the limit is split by what it holds (``_widgets/_base.py`` at 431
    lines gave its batch runs to ``_widgets/batch_runs.py``)."""
    long = {str(f.relative_to(PACKAGE)): n for f in sorted(PACKAGE.rglob("*.py"))
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"split these modules by what they hold: {long}"


def test_package_root_is_light():
    """``import napari_selfdenoise`` loads neither torch nor napari nor Qt."""
    proc = _python("import sys, napari_selfdenoise\n"
                   f"print(sorted(m for m in sys.modules if m.split('.')[0] in "
                   f"{FORBIDDEN + ('torch',)!r}))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_planning_a_prediction_does_not_load_torch():
    """The inference and tiling modules import torch only when a prediction runs."""
    proc = _python("import sys\nimport napari_selfdenoise.core.inference\n"
                   "print('torch' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# ------------------------------------------------------------------ npe2 manifest


def test_manifest_file_validates():
    pm = _manifest()
    assert pm.name == "napari-selfdenoise"
    ids = {c.id for c in pm.contributions.commands}
    for group in ("readers", "writers", "widgets", "sample_data"):
        for contribution in getattr(pm.contributions, group):
            assert contribution.command in ids, f"{group}: unknown command {contribution.command}"


def test_entry_point_points_at_the_shipped_manifest():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "napari-selfdenoise"]
    assert [ep.value for ep in eps] == ["napari_selfdenoise:napari.yaml"]


def test_napari_discovers_the_installed_plugin():
    """What napari does at start-up: discover plugins through their distributions.

    Needs ``napari_selfdenoise/napari.yaml`` to exist inside the installed package, in an
    editable (development) install too, not only in a built wheel.
    """
    from npe2 import PluginManager

    manager = PluginManager()
    manager.discover(include_npe1=False)
    names = sorted(manager._manifests)
    assert "napari-selfdenoise" in names, f"napari discovers only {names}"
    installed = manager.get_manifest("napari-selfdenoise")
    assert installed.contributions.model_dump() == _manifest().contributions.model_dump()


@pytest.mark.parametrize("command", [c.python_name for c in _manifest().contributions.commands])
def test_manifest_command_resolves(command):
    """INTEGRATION: every ``python_name`` of the manifest is an importable callable."""
    import importlib

    module_name, _, attr = command.partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr)), command


def test_npe2_validate_cli():
    """INTEGRATION: ``npe2 validate napari-selfdenoise --imports`` as a plugin author runs it."""
    npe2 = Path(sys.executable).with_name("npe2")
    proc = _run([npe2, "validate", "napari-selfdenoise", "--imports"], timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout.lower()


def test_sample_data_contributions_return_layer_tuples():
    import importlib

    pm = _manifest()
    commands = {c.id: c.python_name for c in pm.contributions.commands}
    keys = {s.key: commands[s.command] for s in pm.contributions.sample_data}
    assert set(keys) == {"phantom2d", "phantom3d", "phantom_correlated", "lysosome"}
    results = {}
    for key, python_name in keys.items():
        module_name, _, attr = python_name.partition(":")
        results[key] = getattr(importlib.import_module(module_name), attr)()
    for key in ("phantom2d", "phantom3d", "phantom_correlated"):
        (noisy, noisy_kw, kind), (clean, clean_kw, kind2) = results[key]
        assert kind == kind2 == "image" and noisy.shape == clean.shape
        assert clean_kw["metadata"]["ground_truth"] is True and not clean_kw["visible"]
        assert noisy_kw["metadata"]["axes"] == ("ZYX" if key == "phantom3d" else "YX")
    assert results["phantom_correlated"][0][1]["metadata"]["noise_kernel"]
    assert results["phantom3d"][0][0].ndim == 3
    ((data, kwargs, kind),) = results["lysosome"]
    assert kind == "image" and data.shape == (10, 128, 128)
    assert kwargs["metadata"]["axes"] == "TYX" and kwargs["metadata"]["license"] == "MIT"
    # napari accepts every tuple as it is (no viewer needed)
    from napari.layers import Layer

    for key, tuples in results.items():
        for data, kwargs, kind in tuples:
            layer = Layer.create(data, kwargs, kind)
            assert layer.name == kwargs["name"] and layer.data.shape == data.shape, key


# ------------------------------------------------------------------ wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="the wheel test needs hatchling (make venv)")
    out = tmp_path_factory.mktemp("wheel")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--disable-pip-version-check", "-q", "-w", out, REPO], timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("napari_selfdenoise-*.whl")
    return path


def test_wheel_ships_manifest_data_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped_manifest = zf.read("napari_selfdenoise/napari.yaml")
        (ep_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_name).decode()
    assert shipped_manifest == (REPO / "napari.yaml").read_bytes()
    for required in ("napari_selfdenoise/data/lysosome.tif",
                     "napari_selfdenoise/data/ATTRIBUTION.md",
                     "napari_selfdenoise/core/samples.py",
                     "napari_selfdenoise/_sample_data.py",
                     "napari_selfdenoise/cli/__init__.py"):
        assert required in names
    assert "[napari.manifest]\nnapari-selfdenoise = napari_selfdenoise:napari.yaml" in entry_points
    assert "napari-selfdenoise = napari_selfdenoise.cli:main" in entry_points
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    assert wheel.stat().st_size < 2_000_000


# ------------------------------------------------------------------ command line


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("napari-selfdenoise")
    proc = _run([script, "--version"])
    assert proc.returncode == 0, proc.stderr
    from napari_selfdenoise import __version__

    assert proc.stdout.strip() == f"napari-selfdenoise {__version__}"


@pytest.mark.parametrize("sub", ["", "train", "predict", "calibrate", "run", "demo", "export"])
def test_cli_help(sub):
    """INTEGRATION: ``--help`` of the CLI and of each sub-command works without torch."""
    args = [sub, "--help"] if sub else ["--help"]
    code = ("import sys\nfrom napari_selfdenoise.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'napari'})\n"
            "print('EXIT', code, *heavy)")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("EXIT 0"), proc.stdout
    assert last == "EXIT 0", f"--help imported {last.split()[2:]}: import them inside the command"
    assert "usage: napari-selfdenoise" in proc.stdout
    if sub:
        assert f"napari-selfdenoise {sub}" in proc.stdout


def test_cli_without_command_prints_help_and_fails():
    proc = _run([sys.executable, "-m", "napari_selfdenoise"])
    assert proc.returncode == 2
    assert "COMMAND" in proc.stdout
