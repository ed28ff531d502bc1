"""A CSV table of your own as float32 features and a target, every way it can be wrong one line.

The file is read with the csv module (a header row of column names, then one row per sample;
``,`` or ``;`` or a tab, sniffed). A cell that is empty or one of ``NA``, ``N/A``, ``NaN``,
``null``, ``None``, ``?`` (any case) is missing. A column is numeric when every present cell is a
number, categorical when none is (or when named in ``categorical``); a column of numbers with a
few words in it is a mistake, never a guess. Numeric features are standardised with the train
split's statistics (sklearn's StandardScaler), categorical ones one-hot encoded by sklearn's
OneHotEncoder fitted on the train split (a category seen only in val or test rows encodes as
zeros). The target is a number to regress, or, when it is not numeric or ``classify`` is set,
a class: labels index the sorted class names.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


class TableError(ValueError):
    """A CSV that cannot be read as a table of samples with the target column."""


@dataclass(frozen=True)
class Table:
    """The table as read: the header, the rows (lists of stripped cells) with their line numbers."""

    path: Path
    columns: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]  # the file's line number of each row (the header is line 1)


def read_csv(path: str | os.PathLike) -> Table:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Excel's UTF-8 export) is not a column name
    except FileNotFoundError:
        raise TableError(f"{path}: no such file; pass --data the path of a CSV file") from None
    except IsADirectoryError:
        raise TableError(f"{path}: a folder, not a CSV file; pass --data the path of a CSV file") from None
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start}); "
                         "export it as CSV (UTF-8)") from None
    if not text.strip():
        raise TableError(f"{path}: the file is empty; it needs a header row of column names and a row per sample")
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel  # one column, or no delimiter the sniffer is sure of: plain commas
    reader = csv.reader(text.splitlines(), dialect)
    header = [c.strip() for c in next(reader)]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes or "" in header:
        what = f"column {dupes[0]!r} appears twice" if dupes else "a column has no name"
        raise TableError(f"{path}: {what} in the header (line 1); give every column its own name")
    rows, lines = [], []
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue  # a blank line, e.g. at the end
        if len(row) != len(header):
            raise TableError(f"{path}: line {line} has {len(row)} cells but the header has {len(header)} columns; "
                             "fix that row (a comma inside a value needs quotes)")
        rows.append([c.strip() for c in row])
        lines.append(line)
    if not rows:
        raise TableError(f"{path}: a header but no rows; add a row per sample below the header")
    return Table(path, tuple(header), rows, lines)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def prepare_table(table: Table, target: str, *, classify: bool = False, missing: str = "error",
                  categorical: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> dict:
    """The table's columns sorted into features and target, and its rows checked.

    Returns ``{"numeric": [names], "categorical": [names], "target": name, "classes": class names
    or None, "rows": kept row indices, "x_numeric": float64 (n, len(numeric)), "x_categorical":
    object (n, len(categorical)), "y": float32 (n,) or int32 labels (n,), "dropped": rows dropped
    for missing cells}``. ``missing``: "drop" leaves out a row with a missing cell in a used column,
    "error" stops at the first one. Every problem is a :class:`TableError` naming the column (and
    the line) and what to do."""
    where = str(table.path)
    for name, flag in ((target, "--target"), *((c, "--categorical") for c in categorical),
                       *((c, "--ignore") for c in ignore)):
        if name not in table.columns:
            raise TableError(f"{where}: no column {name!r} ({flag}); its columns: {', '.join(table.columns)}")
    if target in ignore:
        raise TableError(f"{where}: the target {target!r} is also in --ignore; leave it out of --ignore")
    used = [c for c in table.columns if c not in ignore]
    features = [c for c in used if c != target]
    if not features:
        raise TableError(f"{where}: no feature columns besides the target {target!r}; the table needs at least one")
    col = {c: i for i, c in enumerate(table.columns)}
    present = np.array([[r[col[c]].lower() not in MISSING for c in used] for r in table.rows])  # (rows, used)
    for j, c in enumerate(used):
        if not present[:, j].any():
            raise TableError(f"{where}: column {c!r} has no values (every cell is empty or NA); "
                             f"delete the column or pass --ignore {c}")
    complete = present.all(1)
    if not complete.all():
        if missing == "error":
            i = int(np.flatnonzero(~complete)[0])
            c = used[int(np.flatnonzero(~present[i])[0])]
            raise TableError(f"{where}: line {table.lines[i]}: column {c!r} is missing ({table.rows[i][col[c]]!r}); "
                             f"{int((~complete).sum())} rows have a missing cell: fill them in or pass --missing drop")
        if not complete.any():
            raise TableError(f"{where}: every row has a missing cell, nothing is left with --missing drop; "
                             "fill the cells in or --ignore the emptiest columns")
    keep = np.flatnonzero(complete)
    rows = [table.rows[i] for i in keep]
    kinds = {}
    for c in features + [target]:
        numbers = [_number(r[col[c]]) for r in rows]
        if c in categorical:
            kinds[c] = "categorical"
        elif all(v is not None for v in numbers):
            kinds[c] = "numeric"
        elif all(v is None for v in numbers):
            kinds[c] = "categorical"
        else:  # mostly numbers: name the first cell that is not one
            k = next(k for k, v in enumerate(numbers) if v is None)
            share = sum(v is not None for v in numbers) / len(numbers)
            if share >= 0.5:
                raise TableError(f"{where}: line {table.lines[keep[k]]}: column {c!r} holds numbers but this cell is "
                                 f"{rows[k][col[c]]!r}; correct the cell, leave it empty to mark it missing, or pass "
                                 f"--categorical {c} to treat the column as categories")
            kinds[c] = "categorical"
    y_cells = [r[col[target]] for r in rows]
    if classify or kinds[target] == "categorical":
        classes = tuple(sorted(set(y_cells), key=lambda v: (_number(v) is None, _number(v) or 0.0, v)))
        if len(classes) < 2:
            raise TableError(f"{where}: the target {target!r} has one class ({classes[0]!r}) in the rows used; "
                             "a classifier needs two or more")
        index = {v: i for i, v in enumerate(classes)}
        y = np.array([index[v] for v in y_cells], np.int32)
    else:
        classes = None
        y = np.array([float(v) for v in y_cells], np.float32)
        if not np.isfinite(y).all():
            k = int(np.flatnonzero(~np.isfinite(y))[0])
            raise TableError(f"{where}: line {table.lines[keep[k]]}: the target {target!r} is {y_cells[k]!r}; "
                             "give a finite number or leave the cell empty to mark it missing")
        if np.ptp(y) == 0:
            raise TableError(f"{where}: the target {target!r} has one value ({y_cells[0]}) in every row used; "
                             "there is nothing to learn: choose another --target")
    numeric = [c for c in features if kinds[c] == "numeric"]
    cats = [c for c in features if kinds[c] == "categorical"]
    x_num = np.array([[float(r[col[c]]) for c in numeric] for r in rows], np.float64).reshape(len(rows), len(numeric))
    bad = ~np.isfinite(x_num)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise TableError(f"{where}: line {table.lines[keep[i]]}: column {numeric[j]!r} is {rows[i][col[numeric[j]]]!r}; "
                         "give a finite number or leave the cell empty to mark it missing")
    x_cat = np.array([[r[col[c]] for c in cats] for r in rows], dtype=object).reshape(len(rows), len(cats))
    return {"numeric": numeric, "categorical": cats, "target": target, "classes": classes, "rows": keep,
            "x_numeric": x_num, "x_categorical": x_cat, "y": y, "dropped": int(len(table.rows) - len(keep))}


def encode_features(prepared: dict, parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """float32 (n, features) per part (row indices into the kept rows; the first is the train
    split): numeric columns standardised with the train part's mean and std (a constant column
    stays 0), categorical ones one-hot with the train part's categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n_num = len(prepared["numeric"])
    x = np.concatenate([prepared["x_numeric"].astype(object), prepared["x_categorical"]], axis=1)
    encoder = ColumnTransformer([
        ("numeric", StandardScaler(), list(range(n_num))),
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         list(range(n_num, x.shape[1]))),
    ], sparse_threshold=0.0)
    encoder.fit(x[parts[0]])
    return tuple(np.asarray(encoder.transform(x[p]), np.float64).astype(np.float32) for p in parts)
