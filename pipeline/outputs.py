"""Files a command writes for the user: whole or not at all, every secret redacted."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pipeline.outcome import OutFile
from pipeline.redaction import redact_bytes

T = TypeVar("T")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so a reader never sees half of it (temp file in the same folder + rename),
    with every secret redacted."""
    data = redact_bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(files: Iterable[OutFile[T]], result: T) -> None:
    """Each requested file, rendered from ``result`` by its reporter, in the order asked."""
    for out in files:
        write_atomic(out.path, out.render(result))
