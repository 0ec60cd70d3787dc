"""The documentation keeps up with the code: every command option on its page, every public name in the API pages.

Fast on purpose: the command line's parameters are read from click (``weightkit --help`` imports no TensorFlow), the
pages as text. ``mkdocs build --strict`` (in .ci/run) checks the rest: links, anchors, the docstrings' numpydoc.
"""

import ast
import importlib
import os
import re
import subprocess
import sys

import click
import pytest

from weightkit.cli import COMMANDS, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def _command(name):
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"weightkit {name} did not load"
    return command


def _option_names(command):
    """Every spelling of every option, as click declares it: ``-o`` and ``--output``, ``--x`` and ``--no-x``."""
    return [(param.name, spelling) for param in command.params if isinstance(param, click.Option)
            for spelling in param.opts + param.secondary_opts]


def _mentions(text, spelling):
    # A whole option, not a prefix of a longer one: --data must not be found inside --data-dir, nor -o in --output.
    return re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", text) is not None


def test_every_command_has_a_page_in_the_nav():
    nav = _read("mkdocs.yml")
    for name in COMMANDS:
        assert os.path.isfile(os.path.join(DOCS, "commands", f"{name}.md")), f"docs/commands/{name}.md is missing"
        assert f"commands/{name}.md" in nav, f"mkdocs.yml's nav lacks commands/{name}.md"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_is_on_its_command_page(name):
    page = _read("docs", "commands", f"{name}.md")
    missing = [spelling for _, spelling in _option_names(_command(name)) if not _mentions(page, spelling)]
    assert not missing, f"docs/commands/{name}.md does not mention {', '.join(missing)} of `weightkit {name}`"


def test_reading_the_commands_imports_no_tensorflow():
    # What keeps this file fast: every command's options come from click without TensorFlow or Keras.
    code = ("import sys, click; from weightkit.cli import COMMANDS, cli; ctx = click.Context(cli); "
            "[cli.get_command(ctx, name).params for name in COMMANDS]; "
            "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_option_check_sees_secondary_names_and_whole_words():
    # The check itself, on a command made here: a flag's off-switch counts, and a longer option does not stand in.
    @click.command()
    @click.option("--color/--no-color", default=True)
    @click.option("-o", "--output")
    def sample(color, output):
        pass

    assert _option_names(sample) == [("color", "--color"), ("color", "--no-color"), ("output", "-o"),
                                     ("output", "--output")]
    assert _mentions("use `--no-color`", "--no-color")
    assert not _mentions("use `--no-color-map`", "--no-color")
    assert not _mentions("`--output`", "-o")


@pytest.mark.parametrize("package, page", [("weightkit.analysis", "analysis.md"), ("weightkit.reports", "reports.md")])
def test_lazy_packages_list_their_api_from_the_lazy_table(package, page):
    # These packages name their API in a lazy table that Griffe cannot read statically; docs/_hooks/source_tree.py
    # expands the marker into one entry per name at build time, so a new name is documented without editing the page.
    assert f"<!-- api: {package} -->" in _read("docs", "api", page)


def _static_all(folder):
    """A package's ``__all__``, read from its ``__init__.py`` without importing it (compress imports Keras)."""
    tree = ast.parse(_read(folder, "__init__.py"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "__all__" for target in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{folder}/__init__.py has no literal __all__")


def test_every_verb_of_weightkit_is_in_a_documented_package():
    import weightkit

    for name, package in weightkit._LAZY.items():
        if package == "weightkit.compress":
            # Rendered on the subpackages' pages, which list their __all__.
            assert name in _static_all("compress"), f"weightkit.{name} is not in weightkit.compress.__all__"
        else:
            lazy = importlib.import_module(package)._LAZY
            assert name in lazy or name == "WeightkitError", f"weightkit.{name} is not in {package}'s lazy table"


def test_the_readme_links_resolve():
    readme = _read("README.md")
    targets = re.findall(r"\]\(((?!https?:|#)[^)#\s]+)", readme)
    assert targets, "README.md links into nothing"
    missing = [target for target in targets if not os.path.exists(os.path.join(ROOT, target))]
    assert not missing, f"README.md links to missing files: {missing}"
