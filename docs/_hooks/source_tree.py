"""MkDocs hooks: lay the installed package's layout out for mkdocstrings; fill in what the code knows.

The repository keeps ``analysis/``, ``compress/`` and ``reports/`` beside ``weightkit/`` and setup.py installs them
inside it (``weightkit.analysis``, ...). Griffe, which reads the docstrings statically, looks for
``weightkit/analysis/`` on disk and does not follow setup.py's mapping, so ``on_config`` copies the four folders into
that tree under ``build/docs-src/`` (ignored by git; about 1.5 MB), where mkdocs.yml points the Python handler.
Griffe resolves symbolic links to their real folder, so links would not do. In the copy, Sphinx roles
(``:func:`name```) become plain code spans, which Markdown shows as code. Nothing is imported for that: no TensorFlow at
build time.

``on_page_markdown`` fills in what the code already knows, where a page asks for it: the support matrix (from
``weightkit.reports.support_matrix``, which reads the layer registry without Keras) and the API entries of a package
whose public names live in a lazy table, and the table of the names ``import weightkit`` gives.
"""

import os
import re
import shutil

from mkdocs.plugins import event_priority

#: Import name under ``weightkit`` -> the repository folder that holds it (as setup.py's FOLDERS).
FOLDERS = {"analysis": "analysis", "compress": "compress", "reports": "reports"}


@event_priority(100)  # before mkdocstrings' on_config, which drops a search path that does not exist yet
def on_config(config):
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    tree = os.path.join(root, "build", "docs-src", "weightkit")
    shutil.rmtree(os.path.dirname(tree), ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(root, "weightkit"), tree, ignore=skip)
    for name, folder in FOLDERS.items():
        shutil.copytree(os.path.join(root, folder), os.path.join(tree, name), ignore=skip)
    _plain_roles(tree)
    return config


#: A Sphinx cross-reference role in a docstring (``:func:`~weightkit.analysis.analyze```), which mkdocstrings would
#: print as it stands.
SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(~?)([^`<]+?)`")


def _plain_roles(tree):
    """Turn the copy's Sphinx roles into code spans (``~`` keeps the last name, as Sphinx shows it)."""
    def plain(match):
        name = match.group(2).strip()
        return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"

    for directory, _, files in os.walk(tree):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(directory, file)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                changed = SPHINX_ROLE.sub(plain, text)
                if changed != text:
                    with open(path, "w", encoding="utf-8") as handle:
                        handle.write(changed)


#: Where a page asks for the support matrix, generated from the layer registry at build time (so it cannot go stale).
SUPPORT_MATRIX = "<!-- support-matrix: generated -->"


#: ``<!-- api: PACKAGE -->`` on a page: one mkdocstrings entry per name of PACKAGE's lazy table (``_LAZY``), grouped by
#: the module that defines it. weightkit.analysis and weightkit.reports name their API in such a table, which Griffe
#: cannot read statically; importing the package reads it without TensorFlow (the modules load on first use).
API_MARKER = re.compile(r"<!-- api: ([\w.]+) -->")


def _api_entries(package):
    import importlib

    lazy = dict(importlib.import_module(package)._LAZY)
    if package == "weightkit.analysis":
        lazy["WeightkitError"] = "weightkit.analysis.errors"  # imported eagerly, not in the lazy table
    lines = []
    for module in sorted(set(lazy.values())):
        lines += [f"## `{module}`", ""]
        for name in sorted(n for n, m in lazy.items() if m == module):
            lines += [f"::: {module}.{name}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


#: ``<!-- verbs -->`` on a page: a table of the names ``import weightkit`` gives, each linked to its API entry.
VERBS = "<!-- verbs -->"


def _defining_module(package, name):
    """The module that defines ``name`` of ``package``, following lazy tables (``_LAZY``) down, importing no TensorFlow.

    weightkit, weightkit.analysis, weightkit.compress (and its quantize subpackage) and weightkit.reports name their
    API in such tables; a name a package imports eagerly instead (weightkit.analysis.WeightkitError) gives its class's
    module.
    """
    import importlib

    module = importlib.import_module(package)
    lazy = getattr(module, "_LAZY", {})
    if name in lazy and lazy[name] != package:
        return _defining_module(lazy[name], name)
    if name in lazy:
        return package
    return getattr(module, name).__module__


def _verb_table(root):
    import weightkit

    rows = ["| `weightkit.` | defined in |", "|---|---|"]
    for name, package in sorted(weightkit._LAZY.items(), key=lambda item: (item[1], item[0].lower())):
        module = _defining_module(package, name)
        # A subpackage that documents its names itself (compress.merge, ...) is their page; its entries resolve there.
        rows.append(f"| [`{name}`][{module}.{name}] | `{module}` |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if SUPPORT_MATRIX in markdown:
        from weightkit.reports.support_matrix import support_matrix_markdown

        markdown = markdown.replace(SUPPORT_MATRIX, support_matrix_markdown())
    if VERBS in markdown:
        markdown = markdown.replace(VERBS, _verb_table(os.path.dirname(os.path.abspath(config.config_file_path))))
    return API_MARKER.sub(lambda match: _api_entries(match.group(1)), markdown)
