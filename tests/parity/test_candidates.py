"""What `parity check` is pointed at, by file: a ported .safetensors is the port, a plain torchvision
.safetensors is a state dict candidate, as their .pth twins are; a damaged one is one error."""

from __future__ import annotations

import pytest
import torch

from convert.port import checkpoint
from convert.runtime.errors import TfportError
from parity.candidates import load_candidate
from tests.backbones.conftest import write_ported


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_ported_file_is_the_port(tmp_path, suffix):
    p = tmp_path / f"ported{suffix}"
    sha = write_ported(p)
    c = load_candidate(p)
    assert c.kind == "ported" and c.sha256 == sha and c.meta["alpha"] == 0.35 and not c.module.training


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_plain_state_dict(tmp_path, suffix):
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v2

    sd = mobilenet_v2(width_mult=0.5).state_dict()
    p = tmp_path / f"tv{suffix}"
    if suffix == ".pth":
        torch.save(sd, p)
    else:
        save_file(sd, str(p))
    c = load_candidate(p)
    assert c.kind == "state_dict" and c.meta["alpha"] == 0.5 and c.meta["declared"] is False


def test_damaged_ported_safetensors_is_reported_as_such(tmp_path):
    p = tmp_path / "ported.safetensors"
    write_ported(p)
    data = bytearray(p.read_bytes())
    p.write_bytes(bytes(data[: len(data) - 1000]))  # header intact: still declares itself a tfport checkpoint
    assert checkpoint.declares_ported(p)
    with pytest.raises(TfportError, match="ported.safetensors: not a readable safetensors file"):
        load_candidate(p)
