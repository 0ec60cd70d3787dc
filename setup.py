"""The package layout, which pyproject.toml cannot say: four folders, one ``weightkit`` namespace.

The repository keeps ``analysis/``, ``compress/`` and ``reports/`` beside ``weightkit/`` (a fixed layout); they install
inside it as ``weightkit.analysis``, ``weightkit.compress`` and ``weightkit.reports``, so the wheel's top level is
``weightkit`` alone. Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

#: Import name -> the folder that holds it.
FOLDERS = {"weightkit": "weightkit", "weightkit.analysis": "analysis", "weightkit.compress": "compress",
           "weightkit.reports": "reports"}

packages = [name for top in FOLDERS for name in
            [top] + [f"{top}.{sub}" for sub in find_packages(FOLDERS[top]) if f"{top}.{sub}" not in FOLDERS]]
setup(packages=packages, package_dir=FOLDERS)
