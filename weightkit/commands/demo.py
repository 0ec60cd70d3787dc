"""``weightkit demo``: the main job on a built-in example (scikit-learn's digits, no download)."""

import os

import click

from .._common import debug_option, force_option, note, quiet_option, stdout_console


@click.command()
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=str),
              default="weightkit-demo", show_default=True, help="Folder for the demo's files.")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Training epochs of the example model.")
@force_option
@quiet_option
@debug_option
def demo(output, epochs, force):
    """Train an over-wide MLP on scikit-learn's digits and find its redundant neurons."""
    from analysis import analyze_model
    from analysis.data import load_data
    from analysis.examples import build_wide_mlp, train_example
    from analysis.io import atomic_directory, atomic_write_json
    from reports.console import print_analysis

    console = stdout_console()
    with atomic_directory(output, force=force) as work:
        dataset = load_data("sklearn:digits", seed=0)
        note(f"training a 64-256-256-10 MLP on digits for {epochs} epochs (weight decay 3e-3)")
        model, accuracy = train_example(build_wide_mlp(), dataset, epochs=epochs, seed=0)
        model_path = os.path.join(work, "digits_mlp.keras")
        model.save(model_path)
        console.print(f"digits_mlp: test accuracy {accuracy:.4f} on {len(dataset.x_test)} held-out digits")
        result = analyze_model(model, path=os.path.join(output, "digits_mlp.keras"))
        print_analysis(result, console)
        atomic_write_json(os.path.join(work, "analysis.json"), result.to_dict())
    console.print(f"wrote {output}/digits_mlp.keras and {output}/analysis.json; next: "
                  f"weightkit analyze {output}/digits_mlp.keras --metric mad")
