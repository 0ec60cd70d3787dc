"""The zoo's transformers (issue #27): trained for seconds on tasks that need attention, saved and reloaded.

``TRANSFORMER_ZOO`` maps a name to its builder (``builder(directory, epochs=...) -> reloaded model``) and
``TRANSFORMER_TASKS`` to the data it learns: a ViT on scikit-learn's digits as patches, a text classifier whose
label says which of two marker tokens comes first, a keras-hub TransformerEncoder classifier on the same task and
tiny keras-hub GemmaBackbone and LlamaBackbone models with a classification head. The keras-hub builders import
keras_hub when called.
"""

import numpy as np

from tests.zoo import VOCAB, L, keras, reloaded

__all__ = ["TRANSFORMER_TASKS", "TRANSFORMER_ZOO", "digits_images", "hub_encoder", "hub_gemma", "hub_llama",
           "order_task", "save_token_pairs", "text_attention", "vit_digits"]

def _positions(ids_source, length):
    """Symbolic position ids (batch, length) built from an integer tensor of that shape, all int32.

    ``layers.Embedding(length, d)(keras.ops.arange(length))`` (NOTES.md) is evaluated once when the
    model is built: its output is stored as a constant and the Embedding never trains (the model has
    no position weights). Ids computed from the input keep the Embedding in the graph, and every op
    on the way (ZEROS_LIKE, ADD on int32) stays integer in TFLite.
    """
    # The constant first: Keras' TensorFlow backend writes ``x + vector`` as BiasAdd, which TFLite has no int32
    # kernel for.
    return keras.ops.add(keras.ops.arange(length, dtype="int32")[None, :], keras.ops.zeros_like(ids_source))


def _encoder_block(x, name, heads, key_dim, ffn):
    """Pre-norm transformer block: LayerNorm, MultiHeadAttention(heads), Add, LayerNorm, Dense FFN, Add."""
    d = x.shape[-1]
    h = L.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    h = L.MultiHeadAttention(heads, key_dim, name=f"{name}_mha")(h, h)
    x = L.Add(name=f"{name}_res1")([x, h])
    h = L.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    h = L.Dense(ffn, activation="gelu", name=f"{name}_ffn1")(h)
    h = L.Dense(d, name=f"{name}_ffn2")(h)
    return L.Add(name=f"{name}_res2")([x, h])


def _fit(model, data, epochs, lr=3e-3, batch_size=32):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def digits_images():
    """scikit-learn's digits as ``Dataset`` of (n, 8, 8, 1) float32 images in [0, 1], 1,437 / 360 split."""
    from sklearn.datasets import load_digits

    from weightkit.analysis.data.datasets import Dataset

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return Dataset(x[:1437], y[:1437], x[1437:], y[1437:], "sklearn digits (8x8 images)", "classification")


def order_task(length=12, vocab=VOCAB, n=1200, n_train=900, seed=0):
    """Synthetic tokens: label 1 when token 1 occurs before token 2 (each occurs once), ``Dataset`` of int32 ids.

    A bag of tokens cannot tell the order: the model has to attend across positions.
    """
    from weightkit.analysis.data.datasets import Dataset

    rng = np.random.default_rng(seed)
    x = rng.integers(3, vocab, size=(n, length)).astype("int32")
    for row in x:
        a, b = rng.choice(length, size=2, replace=False)
        row[a], row[b] = 1, 2
    y = (np.argmax(x == 1, axis=1) < np.argmax(x == 2, axis=1)).astype("int64")
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], "synthetic token order", "classification")


def vit_digits(directory, epochs=6, *, width=32, heads=4, key_dim=8, name="vit_digits", seed=0):
    """A ViT on digits: 16 patches of 2x2, Dense patch embedding + position embedding, 2 pre-norm blocks of
    MultiHeadAttention(4 heads, key_dim 8) and a Dense FFN (32-64-32), residual Adds, mean pool, softmax head.

    ``width`` (the model dimension; the FFN is twice as wide), ``heads`` and ``key_dim`` make a wider ViT of the
    same form (``benchmarks/bench_transformers_shrink.py --wide``); ``name`` names the model and its file; ``seed``
    seeds the initial weights and the training order (``--seed`` of the benchmarks)."""
    keras.utils.set_random_seed(seed)
    d, n = width, 16
    image = keras.Input((8, 8, 1), name="image")
    x = L.Reshape((4, 2, 4, 2), name="grid")(image)
    x = L.Permute((1, 3, 2, 4), name="patch_order")(x)
    x = L.Reshape((n, 4), name="patches")(x)
    ids = _positions(keras.ops.cast(x[:, :, 0], "int32"), n)
    x = L.Dense(d, name="patch_embed")(x)
    x = L.Add(name="add_positions")([x, L.Embedding(n, d, name="position_embed")(ids)])
    for block in range(2):
        x = _encoder_block(x, f"b{block}", heads, key_dim, 2 * d)
    x = L.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(10, activation="softmax", name="probs")(x)
    model = _fit(keras.Model(image, out, name=name), digits_images(), epochs)
    return reloaded(model, directory, name)


def text_attention(directory, epochs=10, *, seed=0):
    """int32 tokens (length 12) -> Embedding + position embedding -> one block of MultiHeadAttention(2 heads) and
    a Dense FFN -> mean pool -> softmax; trained on :func:`order_task` (``seed``: initial weights, training order)."""
    keras.utils.set_random_seed(seed)
    length, d = 12, 32
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, d, name="token_embed")(tokens)
    x = L.Add(name="add_positions")([x, L.Embedding(length, d, name="position_embed")(_positions(tokens, length))])
    x = _encoder_block(x, "b0", 2, 16, 2 * d)
    x = L.GlobalAveragePooling1D(name="pool")(L.LayerNormalization(epsilon=1e-6, name="final_ln")(x))
    out = L.Dense(2, activation="softmax", name="probs")(x)
    model = _fit(keras.Model(tokens, out, name="text_attention"), order_task(), epochs)
    return reloaded(model, directory, "text_attention")


def hub_encoder(directory, epochs=8):
    """keras_hub: TokenAndPositionEmbedding + two TransformerEncoder(2 heads) -> mean pool -> softmax, trained on
    :func:`order_task`."""
    import keras_hub

    keras.utils.set_random_seed(0)
    length, d = 12, 32
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, length, d, name="embed")(tokens)
    for block in range(2):
        x = keras_hub.layers.TransformerEncoder(2 * d, 2, name=f"enc{block}")(x)
    out = L.Dense(2, activation="softmax", name="probs")(L.GlobalAveragePooling1D(name="pool")(x))
    model = _fit(keras.Model(tokens, out, name="hub_encoder"), order_task(), epochs)
    return reloaded(model, directory, "hub_encoder")


def hub_gemma(directory, epochs=4):
    """A tiny keras_hub GemmaBackbone (vocabulary 50, 2 layers, 4 query heads, 1 key/value head, hidden 64,
    intermediate 128, head_dim 16) with a mean-pool softmax head, trained on :func:`order_task` (length 12)."""
    import keras_hub

    keras.utils.set_random_seed(0)
    length = 12
    backbone = keras_hub.models.GemmaBackbone(vocabulary_size=50, num_layers=2, num_query_heads=4,
                                              num_key_value_heads=1, hidden_dim=64, intermediate_dim=128,
                                              head_dim=16, name="gemma")
    tokens = keras.Input((length,), dtype="int32", name="token_ids")
    mask = keras.Input((length,), dtype="int32", name="padding_mask")
    x = backbone({"token_ids": tokens, "padding_mask": mask})
    out = L.Dense(2, activation="softmax", name="probs")(L.GlobalAveragePooling1D(name="pool")(x))
    model = keras.Model([tokens, mask], out, name="hub_gemma")
    data = gemma_task()
    _fit(model, data, epochs)
    return reloaded(model, directory, "hub_gemma")


def hub_llama(directory, epochs=4):
    """A tiny keras_hub LlamaBackbone (vocabulary 50, 2 layers, 4 query heads, 2 key/value heads, hidden 32,
    intermediate 64: head size 32 // 4 = 8) with a mean-pool softmax head, trained on :func:`order_task` (length 12)
    with inputs as :func:`gemma_task`'s."""
    import keras_hub

    keras.utils.set_random_seed(0)
    length = 12
    backbone = keras_hub.models.LlamaBackbone(vocabulary_size=50, num_layers=2, num_query_heads=4,
                                              num_key_value_heads=2, hidden_dim=32, intermediate_dim=64, name="llama")
    tokens = keras.Input((length,), dtype="int32", name="token_ids")
    mask = keras.Input((length,), dtype="int32", name="padding_mask")
    x = backbone({"token_ids": tokens, "padding_mask": mask})
    out = L.Dense(2, activation="softmax", name="probs")(L.GlobalAveragePooling1D(name="pool")(x))
    model = keras.Model([tokens, mask], out, name="hub_llama")
    _fit(model, gemma_task(), epochs)
    return reloaded(model, directory, "hub_llama")


def gemma_task():
    """:func:`order_task` for :func:`hub_gemma`: inputs ``[token_ids, padding_mask]`` (the mask all ones)."""
    from weightkit.analysis.data.datasets import Dataset

    data = order_task()
    both = [[x, np.ones_like(x)] for x in (data.x_train, data.x_test)]
    return Dataset(both[0], data.y_train, both[1], data.y_test, data.source, data.task)


def save_token_pairs(data, path):
    """Write a :func:`gemma_task`-shaped ``Dataset`` (inputs ``[token_ids, padding_mask]``) as the ``.npz`` the CLI's
    ``--data`` reads (``x0_train``, ``x1_train``, ...); returns ``path``."""
    np.savez(path, x0_train=data.x_train[0], x1_train=data.x_train[1], y_train=data.y_train,
             x0_test=data.x_test[0], x1_test=data.x_test[1], y_test=data.y_test)
    return path


#: Transformer builders (``name -> builder(directory)``) and the task each was trained on (``name -> Dataset``).
TRANSFORMER_ZOO = {f.__name__: f for f in (vit_digits, text_attention, hub_encoder, hub_gemma, hub_llama)}
TRANSFORMER_TASKS = {"vit_digits": digits_images, "text_attention": order_task, "hub_encoder": order_task,
                     "hub_gemma": gemma_task, "hub_llama": gemma_task}
