"""weightkit's own Keras-serializable classes, found from a model's configuration alone.

A model saved with the decorrelation regularizer still on its kernels (``weightkit retrain
--keep-regularizer``, or :func:`weightkit.compress.attach_decorrelation` without the detach) names
``weightkit>DecorrelationRegularizer`` in its configuration, and ``weightkit>CombinedRegularizer``
where the layer had its own weight decay as well. Keras resolves such a name only through its
registry, which the defining module fills when it is imported; it imports a module by the name
stored in the file only for its own packages (``keras``, ``keras_hub``, ``keras_cv``,
``keras_nlp``: see ``_retrieve_class_or_fn`` in ``keras/src/saving/serialization_lib.py``).

``analysis`` sits below ``compress`` and never imports it at module level, so this table names
the module that defines each class, and :func:`own_custom_objects` imports that module by name
(:func:`importlib.import_module`) only when a configuration mentions the class. The module
names come from this table, never from the file: such a model runs only weightkit's own,
installed code while loading, so safe mode accepts it.
"""

import importlib

__all__ = ["OWN_CLASSES", "is_own_class", "own_custom_objects"]

#: ``registered name -> module defining it``, for every class weightkit registers with
#: ``keras.saving.register_keras_serializable(package="weightkit")``.
OWN_CLASSES = {
    "weightkit>DecorrelationRegularizer": "weightkit.compress.decorrelate.penalty",
    "weightkit>CombinedRegularizer": "weightkit.compress.decorrelate.kernels",
}


def own_custom_objects(names):
    """The classes of weightkit's own among ``names``, for ``keras.models.load_model(custom_objects=...)``.

    Parameters
    ----------
    names : iterable of str
        Registered names found in a model's configuration (``"weightkit>DecorrelationRegularizer"``).

    Returns
    -------
    dict of str to type
        ``registered name -> class``; names not in :data:`OWN_CLASSES` are left out.
    """
    found = {}
    for name in names:
        module = OWN_CLASSES.get(name)
        if module is not None and name not in found:
            found[name] = getattr(importlib.import_module(module), name.split(">", 1)[1])
    return found


def is_own_class(module, class_name, registered_name):
    """Whether a serialized object's whole identity is one of weightkit's own classes.

    The registered name alone proves nothing (a file can claim any name): the module and class
    name stored beside it must be the ones :data:`OWN_CLASSES` says weightkit's class is saved with.

    Parameters
    ----------
    module, class_name, registered_name : str or None
        The ``module``, ``class_name`` and ``registered_name`` keys of the serialized object.

    Returns
    -------
    bool
    """
    expected = OWN_CLASSES.get(registered_name)
    return expected is not None and module == expected and class_name == registered_name.split(">", 1)[1]
