"""The regression heads by name, in the order tables and --help list them.

Torch-free on purpose: the trainer's settings (backbones.config) and the CLI's --help name the heads
without loading torch; backbones.head builds one per name and refuses to register any other.
"""

from __future__ import annotations

HEAD_KINDS: tuple[str, ...] = ("default", "fastai", "linear")
