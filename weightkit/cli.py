"""``weightkit``: the command group. Each command lives in its own module under ``commands/``.

Commands are imported only when run (or listed in ``--help``), and their modules import
TensorFlow only inside the command body, so ``weightkit --help`` stays fast.
"""

import importlib
import importlib.util
import sys

import click

from weightkit import __version__
from weightkit._common import run_cli
from weightkit._options import prechecked

COMMANDS = {
    "analyze": "weightkit.commands.analyze",
    "report": "weightkit.commands.report",
    "retrain": "weightkit.commands.retrain",
    "merge": "weightkit.commands.merge",
    "quantize": "weightkit.commands.quantize",
    "fold": "weightkit.commands.fold",
    "shrink": "weightkit.commands.shrink",
    "demo": "weightkit.commands.demo",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, module in COMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx, name):
        module = COMMANDS.get(name)
        if module is None or importlib.util.find_spec(module) is None:
            return None
        return prechecked(getattr(importlib.import_module(module), name))  # paths checked before TensorFlow


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="weightkit")
def cli():
    """Find, see, remove and quantize redundant neurons in trained Keras models.

    Start with `weightkit demo`, then `weightkit analyze MODEL` on your own model.
    """


def main(argv=None):
    """Console-script entry point: run the CLI and exit with its status."""
    sys.exit(run_cli(cli, argv))
