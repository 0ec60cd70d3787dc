"""Read a ``--data`` CSV as numbers, streaming: never more than the rows already parsed in memory.

The file must be a regular file (not ``/dev/zero``, a FIFO or a device) of at most
:data:`weightkit.analysis.files.limits.MAX_CSV_BYTES`; a field over the :mod:`csv` module's limit (131,072
characters; no number is that long) is refused naming its line.
"""

import csv
import os

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.limits import MAX_CSV_BYTES, check_regular_file

__all__ = ["read_csv_header", "read_csv_numbers"]

_CHUNK = 4096
#: Bytes of one block of parsed rows: a wide file gets fewer rows per block, never 4,096 x columns up front.
_CHUNK_BYTES = 32 << 20


def _rows_per_chunk(columns):
    return max(1, min(_CHUNK, _CHUNK_BYTES // (8 * max(1, columns))))


def _checked(path):
    check_regular_file(path, "--data ")
    size = os.path.getsize(path)
    if size > MAX_CSV_BYTES:
        raise WeightkitError(
            f"--data {path}: is {size / (1 << 30):.1f} GiB, over the limit of {MAX_CSV_BYTES >> 30} GiB for a CSV; "
            "save the data as .npz (np.savez) or give a smaller sample.")


def _unreadable(path, error, reader):
    """The one line for a CSV file that cannot be read: not UTF-8 text, or not CSV at ``reader``'s line."""
    if not isinstance(error, csv.Error):
        return WeightkitError(f"{path}: cannot be read as UTF-8 CSV ({error}).")
    what = (f"has a field over {csv.field_size_limit()} characters, which is no number" if "field larger" in
            str(error) else f"is not valid CSV ({error})")
    return WeightkitError(f"{path}: line {reader.line_num} {what}; check the file (an unclosed quote?).")


def read_csv_header(path):
    """The column names of a CSV file: its first non-empty line, nothing more is read.

    Lets a caller check the width against a model before any row is parsed.

    Parameters
    ----------
    path : str

    Returns
    -------
    list of str

    Raises
    ------
    WeightkitError
        As :func:`read_csv_numbers`, for the header line.
    """
    _checked(path)
    reader = None  # a csv.Error comes from it, so it exists by then
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for row in reader:
                if row:
                    return row
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise _unreadable(path, error, reader) from error
    raise WeightkitError(f"{path}: no data rows; expected a header line and at least one row.")


def read_csv_numbers(path):
    """The header and the values of a numeric CSV file.

    Parameters
    ----------
    path : str

    Returns
    -------
    header : list of str
    values : ndarray of shape (n_rows, n_columns), float64

    Raises
    ------
    WeightkitError
        Not a regular file, too large, not UTF-8, a field too long, a ragged row or text in a
        numeric column, naming the line.
    """
    _checked(path)
    header, chunks, chunk, line = None, [], None, 0
    reader = None  # a csv.Error comes from it, so it exists by then
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if header is None:
                    header = row
                    block = _rows_per_chunk(len(header))
                    chunk, used = np.empty((block, len(header))), 0
                    continue
                if len(row) != len(header):
                    raise WeightkitError(
                        f"{path}: line {line} has {len(row)} fields, the header has {len(header)}; give every "
                        "row one value per column.")
                for field, text in enumerate(row):
                    try:
                        chunk[used, field] = float(text)
                    except ValueError:
                        raise WeightkitError(
                            f"{path}: line {line}, column {header[field]!r}: {text[:80]!r} is not a number; "
                            "encode text columns as numbers first.") from None
                used += 1
                if used == block:
                    chunks.append(chunk)
                    chunk, used = np.empty((block, len(header))), 0
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise _unreadable(path, error, reader) from error
    if header is None or (not chunks and used == 0):
        raise WeightkitError(f"{path}: no data rows; expected a header line and at least one row.")
    chunks.append(chunk[:used])
    return header, np.concatenate(chunks)
