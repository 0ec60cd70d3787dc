"""Read a model file's configuration without loading the model, refusing hostile files in one line.

A ``.keras`` archive's directory is checked for decompression bombs before any member is
inflated, its weights file for datasets that declare more than they store; an ``.h5`` file's
datasets alike; JSON nested deeper than Python can parse and a ``model_config`` that is not text
are refused by name (see :mod:`weightkit.analysis.files.limits`).
"""

import collections
import contextlib
import io
import json
import struct
import zipfile
from pathlib import PurePosixPath

from weightkit.analysis.files.declared_size import check_declared_parameters
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.hdf5 import open_h5
from weightkit.analysis.files.limits import check_h5_storage, check_zip_directory

__all__ = ["ZipWindow", "first_line", "h5_config", "keras_config", "parse_config_json"]

_RESAVE = "Re-save the model with model.save('model.keras')."


def keras_config(path):
    """The parsed ``config.json`` of a ``.keras`` archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for name in names:
                parts = PurePosixPath(name).parts
                if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                    raise WeightkitError(
                        f"{path}: archive member {name!r} points outside the archive; refusing to "
                        f"read it. {_RESAVE}"
                    )
            twice = sorted((name, count) for name, count in collections.Counter(names).items() if count > 1)
            if twice:
                raise WeightkitError(
                    f"{path}: archive holds {twice[0][1]} members named {twice[0][0]!r}; Keras would read "
                    f"one and ignore the others, so which model this is cannot be told (a forged file?). {_RESAVE}"
                )
            if "config.json" not in names:
                raise WeightkitError(
                    f"{path}: zip archive without config.json, so not a Keras model file; save the "
                    "model with model.save('model.keras')."
                )
            check_zip_directory(path, archive, config_member="config.json", fix=_RESAVE)
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("CRC check failed")
            if "model.weights.h5" in names:
                stored = _check_archived_weights(path, archive)
            else:  # Keras also reads weights saved as model.weights.npz
                stored = archive.getinfo("model.weights.npz").file_size if "model.weights.npz" in names else 0
            config = parse_config_json(archive.read("config.json"), path, "config.json")
            if stored is not None:
                check_declared_parameters(path, config, stored)
            return config
    except (zipfile.BadZipFile, EOFError, OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightkitError(
            f"{path}: corrupt or truncated .keras archive ({first_line(error)}); copy or save the "
            "model again."
        ) from error


def _check_archived_weights(path, archive):
    """Refuse a ``model.weights.h5`` whose datasets declare far more than the archive stores.

    Returns the bytes of weights it stores, or None when it is not HDF5.
    """
    info = archive.getinfo("model.weights.h5")
    with contextlib.ExitStack() as stack:
        if info.compress_type == zipfile.ZIP_STORED:  # as Keras writes it: read in place, seeking directly
            member = ZipWindow(stack.enter_context(open(path, "rb")), info)
        else:
            member = stack.enter_context(archive.open(info))
        try:
            handle = stack.enter_context(open_h5(member, path, where="model.weights.h5:"))
        except (OSError, ValueError):
            return None  # not HDF5: Keras says so in its own words
        return check_h5_storage(path, handle, where="model.weights.h5:")


class ZipWindow(io.RawIOBase):
    """A stored (uncompressed) zip member read in place: seeks are seeks, not re-reads from the start."""

    def __init__(self, handle, info):
        handle.seek(info.header_offset)
        local = handle.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        self._handle, self._size = handle, info.file_size
        self._start = info.header_offset + 30 + name_length + extra_length
        self._position = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = min(max(base + offset, 0), self._size)
        return self._position

    def readinto(self, buffer):
        count = min(len(buffer), self._size - self._position)
        if count <= 0:
            return 0
        self._handle.seek(self._start + self._position)
        data = self._handle.read(count)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


#: Deepest nesting of a configuration's JSON accepted (a real model's is under 30; Keras and the
#: Keras 2 repairs walk it recursively, and Python stops near 1000).
MAX_CONFIG_DEPTH = 200


def parse_config_json(raw, path, where):
    """``json.loads``, with nesting too deep for Python (or deeper than ``MAX_CONFIG_DEPTH``) refused in one line."""
    try:
        document = json.loads(raw)
    except RecursionError:
        document = None
    if document is None or _depth(document) > MAX_CONFIG_DEPTH:
        raise WeightkitError(
            f"{path}: {where} nests objects more than {MAX_CONFIG_DEPTH} deep (a forged file?); refusing it. "
            f"{_RESAVE}"
        )
    return document


def _depth(document):
    deepest, stack = 0, [(document, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((value, level + 1) for value in (item.values() if isinstance(item, dict) else item))
    return deepest


def h5_config(path):
    """The parsed ``model_config`` of an ``.h5`` model file."""
    try:
        with open_h5(path, path) as handle:
            raw = handle.attrs.get("model_config")
            stored = check_h5_storage(path, handle)
    except (OSError, ValueError) as error:
        raise WeightkitError(
            f"{path}: corrupt or truncated HDF5 file ({first_line(error)}); copy or save the "
            "model again."
        ) from error
    if raw is None:
        raise WeightkitError(
            f"{path}: HDF5 file with weights but no model configuration (written by "
            "save_weights?); build the model in code, call load_weights, then model.save('model.keras')."
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raise WeightkitError(
            f"{path}: its model_config attribute is {type(raw).__name__} data, not JSON text, so this is not a "
            "Keras model file; save the model again with model.save('model.keras')."
        )
    try:
        config = parse_config_json(raw, path, "its model configuration")
    except json.JSONDecodeError as error:
        raise WeightkitError(f"{path}: its model configuration is not valid JSON; save the model again.") from error
    check_declared_parameters(path, config, stored)
    return config


def first_line(error):
    """The first line of an error's message, at most 200 characters."""
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
