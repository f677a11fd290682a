# Copyright 2026 The Genesis authors. Licensed under the Apache License, Version 2.0.
"""`evaluate` metric modules shipped with the package, loaded by path so they work offline."""

from pathlib import Path

BITS_PER_BYTE_PATH = str(Path(__file__).resolve().parent / "bits_per_byte.py")

__all__ = ["BITS_PER_BYTE_PATH"]
