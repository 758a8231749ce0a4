"""`fashiongen export`: the ONNX file in onnxruntime and the TorchScript file in torch give PyTorch's images."""

import json

import numpy as np
import pytest
import torch

from fashiongen.cli import main
from fashiongen.gan.artifact import load_generator
from fashiongen.config import CONDITIONS
from fashiongen.gan.sampling import noise
from fashiongen.images import to_uint8
from helpers import make_generator

BATCH = 5  # not the export's example batch (2): the batch size is dynamic


@pytest.fixture(scope="module", params=["none", "label", "encoding", "cluster"])
def exported(request, tmp_path_factory):
    """A generator of each condition kind, exported in both formats through the CLI."""
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    make_generator(root / "generator.pt", request.param)
    for fmt, name in (("onnx", "generator.onnx"), ("torchscript", "generator.pt2")):
        assert main(["export", "--checkpoint", str(root / "generator.pt"), "--format", fmt, "--out", str(root / name)]) == 0
    return request.param, root, load_generator(root / "generator.pt")


def inputs(loaded, n=BATCH):
    z = noise(n, loaded.spec.z_dim, 11)
    if loaded.spec.condition == "label":
        return z, torch.tensor([0, 3, 9, 3, 1][:n])
    if loaded.spec.condition == "encoding":
        return z, torch.randn(n, loaded.spec.cond_dim, generator=torch.Generator().manual_seed(4))
    return (z,)


def reference(loaded, args):
    z, cond = (args[0], args[0][:, :0]) if len(args) == 1 else args
    with torch.no_grad():
        return to_uint8(loaded.module(z, cond))


def test_onnx_in_onnxruntime_gives_pytorchs_images(exported):
    import onnxruntime

    _, root, loaded = exported
    args = inputs(loaded)
    session = onnxruntime.InferenceSession(str(root / "generator.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z", "cond"][: len(args)]
    (images,) = session.run(None, {name: a.numpy() for name, a in zip(("z", "cond"), args)})
    assert images.shape == (BATCH, 1, 28, 28) and images.dtype == np.float32
    got = to_uint8(torch.from_numpy(images)).int()
    assert (got - reference(loaded, args).int()).abs().max() <= 1
    (single,) = session.run(None, {name: a[:1].numpy() for name, a in zip(("z", "cond"), args)})
    assert single.shape == (1, 1, 28, 28)


def test_torchscript_in_torch_gives_pytorchs_images(exported):
    import warnings

    _, root, loaded = exported
    args = inputs(loaded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript
        scripted = torch.jit.load(str(root / "generator.pt2"))
    with torch.no_grad():
        images = scripted(*args)
        assert scripted(*(a[:3] for a in args)).shape == (3, 1, 28, 28)
    assert (to_uint8(images).int() - reference(loaded, args).int()).abs().max() <= 1


def test_the_json_says_what_the_inputs_mean(exported):
    condition, root, loaded = exported
    info = json.loads((root / "generator.onnx.json").read_text())
    assert info["format"] == "onnx" and info["condition"] == condition
    assert info["z_dim"] == loaded.spec.z_dim and info["image_shape"] == [1, 28, 28]
    assert info["output"]["value_range"] == [-1.0, 1.0] and info["classes"] == loaded.classes
    assert info["inputs"][0] == {"name": "z", "dtype": "float32", "shape": ["batch", loaded.spec.z_dim],
                                 "meaning": "noise, standard normal N(0, 1) per component"}
    names = [i["name"] for i in info["inputs"]]
    assert names == (["z", "cond"] if CONDITIONS[condition].asked_for else ["z"])  # cluster samples from z alone
    if condition == "label":
        assert info["inputs"][1]["dtype"] == "int64"
    assert json.loads((root / "generator.pt2.json").read_text())["format"] == "torchscript"


def test_export_of_a_missing_checkpoint_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
