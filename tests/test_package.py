"""What `pip install weightkit` gives: one top-level name, every module, lazy verbs, the version from metadata.

The wheel is built from a copy of the source (the four folders, pyproject.toml, setup.py, README.md), so the build
neither reads nor leaves a ``build/`` folder in the checkout: a stale file there could hide a module left out.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Repository folder -> the package it installs as (setup.py's mapping, seen from the wheel).
FOLDERS = {"weightkit": "weightkit", "analysis": "weightkit/analysis", "compress": "weightkit/compress",
           "reports": "weightkit/reports"}


def _source_modules():
    """Every .py of the four source folders, as the path it must have in the wheel."""
    expected = set()
    for folder, package in FOLDERS.items():
        for directory, subdirectories, files in os.walk(os.path.join(ROOT, folder)):
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
            relative = os.path.relpath(directory, os.path.join(ROOT, folder))
            for name in files:
                if name.endswith(".py"):
                    path = os.path.normpath(os.path.join(package, relative, name))
                    expected.add(path.replace(os.sep, "/"))
    return expected


@pytest.fixture()
def wheel(tmp_path):
    """The wheel's file names, built from a copy of the source by setuptools' PEP 517 hook (pip where it is missing).

    About 1.5 s of CPU, 3 s wall on a quiet machine (10 s at load 10); the build is stopped at 60 s, so a slow build
    fails here instead of stalling the suite.
    """
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    for folder in FOLDERS:
        shutil.copytree(os.path.join(ROOT, folder), source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    try:
        import setuptools  # noqa: F401
    except ImportError:  # pip builds it in an isolated environment instead (downloads setuptools; slower)
        command = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(dist)]
    else:
        # The PEP 517 hook pip itself would call, without pip's start-up: half the time of `pip wheel` here.
        command = [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(dist)!r})"]
    subprocess.run(command, check=True, capture_output=True, cwd=source, timeout=60)
    (path,) = dist.glob("weightkit-*.whl")
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_the_wheel_holds_weightkit_alone_with_every_module_of_the_four_folders(wheel):
    # One test for both checks, so that pytest-xdist's two workers do not build the wheel twice.
    top = {name.split("/")[0] for name in wheel}
    assert top == {"weightkit", f"weightkit-{version('weightkit')}.dist-info"}
    modules = {name for name in wheel if name.endswith(".py")}
    for package in ("weightkit/analysis/__init__.py", "weightkit/compress/merge/__init__.py",
                    "weightkit/reports/__init__.py"):
        assert package in modules
    # A new subpackage (a folder with an __init__.py) is found by setup.py; a folder of modules without one is not,
    # and this names it.
    assert sorted(_source_modules() - modules) == []
    assert sorted(modules - _source_modules()) == []


def test_import_weightkit_names_the_verbs_without_loading_tensorflow():
    code = """
import sys
import weightkit
verbs = ("analyze", "merge_neurons", "quantize_model", "shrink_model")
assert all(verb in dir(weightkit) for verb in verbs), dir(weightkit)
heavy = ("tensorflow", "keras", "numpy")
assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
print(weightkit.__version__)
weightkit.analyze                                   # first use: now weightkit.analysis.api is loaded
assert "weightkit.analysis.api" in sys.modules
assert not [m for m in ("tensorflow", "keras") if m in sys.modules], "analyze's module loaded TensorFlow"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == version("weightkit")


def test_the_console_script_prints_the_metadata_version():
    script = shutil.which("weightkit", path=os.path.dirname(sys.executable)) or shutil.which("weightkit")
    assert script, "the weightkit console script is not installed (pip install -e .)"
    done = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"weightkit, version {version('weightkit')}\n", "")
