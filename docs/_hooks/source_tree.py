"""MkDocs hook: lay the installed package's layout out for mkdocstrings.

The repository keeps ``analysis/``, ``compress/`` and ``reports/`` beside ``weightkit/`` and setup.py installs them
inside it (``weightkit.analysis``, ...). Griffe, which reads the docstrings statically, looks for
``weightkit/analysis/`` on disk and does not follow setup.py's mapping, so this hook copies the four folders into that tree
under ``build/docs-src/`` (ignored by git; about 1.5 MB) before the pages are rendered (Griffe resolves symbolic links
to their real folder, so links would not do); mkdocs.yml points the Python handler
there. Nothing is imported: no TensorFlow at build time.
"""

import os
import shutil

#: Import name under ``weightkit`` -> the repository folder that holds it (as setup.py's FOLDERS).
FOLDERS = {"analysis": "analysis", "compress": "compress", "reports": "reports"}


def on_config(config):
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    tree = os.path.join(root, "build", "docs-src", "weightkit")
    shutil.rmtree(os.path.dirname(tree), ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(root, "weightkit"), tree, ignore=skip)
    for name, folder in FOLDERS.items():
        shutil.copytree(os.path.join(root, folder), os.path.join(tree, name), ignore=skip)
    return config
