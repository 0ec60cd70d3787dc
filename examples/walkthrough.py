"""The weightkit journey from Python: load, analyze, find groups, plot, retrain in your own fit, merge, quantize.

Run it: ``python examples/walkthrough.py [FOLDER]`` (about a minute on 2 cores). It trains
an over-wide MLP on scikit-learn's digits as a stand-in for *your* model, saves it, and then
does with it what you would do with your own ``.keras`` file. ``tests/test_examples_api.py`` runs
:func:`main` with fewer epochs and checks that it imports only the package-level API: names in
the ``__all__`` of ``analysis``, ``compress`` and ``reports`` themselves.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")


def main(folder="walkthrough-output", *, epochs=40, finetune_epochs=5, modes=("float32", "dynamic", "int8"),
         say=print):
    """Run the journey; write a model, a heatmap and TFLite files into ``folder``; return the numbers.

    Parameters
    ----------
    folder : str
        Created if missing.
    epochs, finetune_epochs : int
        Training of the stand-in model, then fine-tuning with the decorrelation regularizer.
    modes : sequence of str
        Quantization modes to compare.
    say : callable
        Where the narration goes (``print``).

    Returns
    -------
    dict
        What each step measured.
    """
    import keras
    import numpy as np

    from weightkit.analysis import analyze, analyze_rows, find_groups, layer_neuron_rows, load_data, load_model, pearson_matrix
    from weightkit.compress import (
        RedundancyMonitor,
        TFLiteModel,
        attach_decorrelation,
        detach_decorrelation,
        merge_neurons,
        quantize_model,
    )
    from weightkit.reports import save_figure, similarity_figure

    os.makedirs(folder, exist_ok=True)
    data = load_data("sklearn:digits", seed=0)  # a Dataset: x_train, y_train, x_test, y_test

    # 0. Your trained model. Here: an over-wide 64-256-256-10 MLP trained with weight decay, saved as a file.
    path = os.path.join(folder, "my_model.keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="pixels")
    hidden = inputs
    for name in ("hidden1", "hidden2"):
        hidden = keras.layers.Dense(256, activation="relu", kernel_regularizer=keras.regularizers.L2(3e-3),
                                    name=name)(hidden)
    trained = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="classes")(hidden),
                          name="digits_mlp")
    trained.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    trained.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    trained.save(path)

    # 1. Load it (safe mode: no code from the file runs).
    loaded = load_model(path)
    model = loaded.model

    # 2. Analyze every layer: redundant groups by Pearson r >= 0.9 between neuron weight rows
    #    (analyze takes the model or its path).
    result = analyze(path)
    for layer in result.layers:
        say(f"{layer.name}: {layer.neurons} neurons, mean |r| {layer.pearson_mean_abs_offdiag:.3f}, "
            f"{len(layer.groups)} groups, {layer.removable} removable")

    # 3. The same groups from the numpy core, for one layer: rows -> Pearson matrix -> groups.
    entry = layer_neuron_rows(model.get_layer("hidden2"))[0]  # entry.rows: (256 neurons, 256 inputs)
    groups = find_groups(pearson_matrix(entry.with_bias()), "pearson", 0.9)  # rows with the bias, as analyze
    say(f"hidden2 by hand: {len(groups)} groups, the largest {max(groups, key=len) if groups else []}")

    # 4. Plot that layer's heatmap in clustered order with its groups outlined.
    detail = analyze_rows(entry, keep_matrices=True)
    figure = similarity_figure(detail.matrices.pearson, detail.matrices.order, detail.matrices.linkage,
                               detail.groups, metric="pearson", title="hidden2: Pearson r between neurons",
                               cut=detail.threshold_value, tree_label="1 − r")
    heatmap = os.path.join(folder, "hidden2_pearson.png")
    save_figure(figure, heatmap)

    # 5. Your own model.fit with the decorrelation regularizer and the redundancy monitor.
    kernels = attach_decorrelation(model, strength=1.0)  # hidden layers; the output layer is left alone
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    monitor = RedundancyMonitor(layers=["hidden1", "hidden2"])
    history = model.fit(data.x_train, data.y_train, epochs=finetune_epochs, batch_size=32, verbose=0,
                        callbacks=[monitor])
    detach_decorrelation(kernels)  # the saved model then needs nothing from weightkit
    curve = history.history["redundancy/hidden2/mean_abs_r"]
    say(f"fine-tuned {finetune_epochs} epochs: hidden2 mean |r| "
        f"{monitor.initial['redundancy/hidden2/mean_abs_r']:.3f} -> {curve[-1]:.3f}")

    # 6. Merge: remove half of each hidden layer's neurons, folding each into its most similar twin,
    #    and measure the smaller model against the fine-tuned one on the held-out digits.
    small, merge_report = merge_neurons(model, "weights", ratio=0.5, evaluate_on=data)
    say(f"merged: {merge_report.params_before:,} -> {merge_report.params_after:,} parameters, accuracy "
        f"{merge_report.evaluation['accuracy_before']:.4f} -> {merge_report.evaluation['accuracy_after']:.4f}")

    # 7. Quantize the smaller model in several modes and compare each with it on the held-out digits.
    contents, report = quantize_model(small, modes, data)
    for row in report.modes:
        say(f"{row.mode}: {row.bytes / 1024:.1f} KiB, accuracy {row.accuracy:.4f}, agreement {row.agreement:.4f}")

    # 8. The exported .tflite runs without TensorFlow (LiteRT interpreter).
    tflite_path = os.path.join(folder, "model.tflite")
    with open(tflite_path, "wb") as handle:
        handle.write(contents[report.exported.mode])
    predictions = TFLiteModel(contents[report.exported.mode]).predict(data.x_test)
    accuracy = float(np.mean(predictions.argmax(axis=1) == data.y_test))
    say(f"exported {report.exported.mode}: {report.exported.reason}; accuracy {accuracy:.4f}")

    return {"path": path, "analysis": result, "groups": groups, "heatmap": heatmap, "history": history.history,
            "initial": monitor.initial, "merge": merge_report, "quantization": report, "tflite": tflite_path,
            "tflite_accuracy": accuracy}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "walkthrough-output")
