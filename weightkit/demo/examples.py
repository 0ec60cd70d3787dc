"""Built-in example models trained on scikit-learn's bundled digits (no download).

The MLP is deliberately over-wide and trained with weight decay, like many production networks:
weight decay pulls neurons that receive similar gradients towards the same direction, so its
hidden layers hold real redundant groups for the tools to find.
"""

from weightkit.analysis._tf import import_keras

__all__ = ["build_small_cnn", "build_wide_mlp", "train_example"]


def build_wide_mlp(hidden=(256, 256), *, n_features=64, n_classes=10, weight_decay=3e-3, name="digits_mlp"):
    """An over-wide ReLU MLP ``n_features-hidden...-n_classes`` with L2 weight decay.

    Returns
    -------
    keras.Model
        Uncompiled; :func:`train_example` compiles it.
    """
    keras = import_keras()
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input((n_features,), name="pixels")
    x = inputs
    for index, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"hidden{index}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=name)


def build_small_cnn(*, filters=(16, 32), n_classes=10, weight_decay=1e-3, name="digits_cnn"):
    """A small CNN for 8×8×1 digit images: two convolutions, pooling, a dense head.

    Returns
    -------
    keras.Model
        Uncompiled; :func:`train_example` compiles it.
    """
    keras = import_keras()
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(filters[0], 3, padding="same", activation="relu", kernel_regularizer=regularizer,
                            name="conv1")(inputs)
    x = keras.layers.Conv2D(filters[1], 3, padding="same", activation="relu", kernel_regularizer=regularizer,
                            name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", kernel_regularizer=regularizer, name="dense")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=name)


def train_example(model, dataset, *, epochs=40, batch_size=32, learning_rate=1e-3, seed=0):
    """Compile and train a built-in example on a :class:`weightkit.analysis.data.datasets.Dataset`, seeded.

    Returns
    -------
    model : keras.Model
        The trained model (compiled with Adam and sparse categorical cross-entropy).
    accuracy : float
        Accuracy on the dataset's test split.
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(dataset.x_test, dataset.y_test, verbose=0)
    return model, float(accuracy)
