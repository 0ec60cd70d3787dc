"""``merge --heads global``: the ratio spread over all the model's attention heads, where the outputs move least
(``merge_neurons(heads="global")``, :func:`weightkit.compress.merge.heads.merge_heads_by_data` with
``allocation="global"``), on the zoo's ViT saved and reloaded; the default ``--heads auto`` that chooses it for a
model of few heads; and the refusals of the option where it has no meaning."""

import json

import pytest

from weightkit._common import run_cli
from weightkit.cli import cli


def test_cli_heads_auto_is_global_on_a_vit_of_eight_heads(load_transformer, keras, tmp_path, capsys):
    folder, model, _ = load_transformer("vit_digits")
    output = tmp_path / "vit_global.keras"
    # No --heads: the default, auto, spreads the ratio globally over the 2 x 4 heads (at most GLOBAL_MAX_HEADS).
    status = run_cli(cli, ["merge", str(folder / "vit_digits.keras"), "-o", str(output), "--mode", "data",
                           "--ratio", "0.25", "--samples", "300", "--data", "sklearn:digits"])
    out, err = capsys.readouterr()
    assert status == 0, err
    small = keras.saving.load_model(output)
    kept = {name: small.get_layer(name).num_heads for name in ("b0_mha", "b1_mha")}
    assert sum(kept.values()) == 6 and min(kept.values()) >= 1  # round(0.25 x 8) heads of the model
    document = json.loads((tmp_path / "vit_global.json").read_text())
    heads = {layer["name"]: layer["heads"]["after"] for layer in document["layers"] if layer.get("unit") == "heads"}
    assert heads == {f"{name}/heads": count for name, count in kept.items()}
    assert "global allocation" in json.dumps(document)
    assert any(note.startswith("heads: the ratio is spread over all the model's attention heads")
               for note in document["notes"])
    assert "--heads global would choose" not in err  # the suggestion is for a uniform merge only
    assert document["evaluation"]["agreement"] >= 0.9  # measured 0.96 at 1,437 calibration inputs


@pytest.mark.parametrize(("extra", "message"), [
    (["--mode", "data", "--data", "sklearn:digits", "--heads", "global"], "--heads global: spreads --ratio"),
    (["--mode", "data", "--data", "sklearn:digits", "--heads", "global", "--max-drop", "1"],
     "--heads global: spreads --ratio"),
    (["--ratio", "0.25", "--heads", "global"], "--heads global: only with --mode data"),
])
def test_cli_heads_global_is_refused_without_a_ratio_of_a_data_merge(trained_transformer, tmp_path, capsys, extra,
                                                                   message):
    folder, _ = trained_transformer("text_attention")
    output = tmp_path / "out.keras"
    status = run_cli(cli, ["merge", str(folder / "text_attention.keras"), "-o", str(output)] + extra)
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_merge_neurons_refuses_a_bad_heads_value(load_transformer):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress.merge import merge_neurons

    _, model, data = load_transformer("text_attention")
    with pytest.raises(WeightkitError, match="Expected True, False, 'auto', 'uniform' or 'global'"):
        merge_neurons(model, "data", data, ratio=0.5, heads="all")
    with pytest.raises(WeightkitError, match="use it with mode='data' and ratio="):
        merge_neurons(model, heads="global")
