"""Model files: format tags, layout versions, conversion of old generator files (issue 23 item 3)."""

from pathlib import Path

import pytest
import torch

from fashiongen.errors import CheckpointError
from fashiongen.gan.artifact import GeneratorSpec, build_generator, load_generator, save_generator
from fashiongen.model_files import EVALUATOR, read_model_file, save_model_file
from fashiongen.models import layouts
from helpers import make_evaluator

LAYOUTS = Path(__file__).parent / "data" / "generator_layouts"
# Small generators written by the FashionGen of each past layout (tests/data/generator_layouts/README.md),
# beside the images that code drew from them for fixed noise.
PAST_FILES = ["layout1_2026-11-23", "layout2_unversioned_2026-11-23"]


@pytest.mark.parametrize("name", PAST_FILES)
def test_generator_files_of_every_past_layout_load_and_draw_what_their_code_drew(name):
    expected = torch.load(LAYOUTS / f"{name}_expected.pt", weights_only=True)
    loaded = load_generator(LAYOUTS / f"{name}.pt")
    with torch.no_grad():
        images = loaded.module(expected["z"])
    assert images.std() > 0.3  # not a flat image: a scrambled projection would show
    torch.testing.assert_close(images, expected["images"], atol=1e-5, rtol=0)


def test_a_layout_1_file_read_without_conversion_draws_other_images():
    """The failure the layout version prevents: same tensor names and shapes, scrambled output."""
    payload = torch.load(LAYOUTS / "layout1_2026-11-23.pt", weights_only=True)
    expected = torch.load(LAYOUTS / "layout1_2026-11-23_expected.pt", weights_only=True)
    module = build_generator(GeneratorSpec.from_dict(payload["config"])).eval()
    module.load_state_dict(payload["state_dict"])  # loads without error...
    with torch.no_grad():
        images = module(expected["z"])
    assert (images - expected["images"]).abs().max() > 0.1  # ...and draws something else


def test_new_generator_files_record_todays_layout(tmp_path):
    for arch in ("dcgan", "upsample"):
        spec = GeneratorSpec(z_dim=8, width=4, channels=1, image_size=28, arch=arch)
        save_generator(tmp_path / f"{arch}.pt", build_generator(spec), spec, [], {"train": {}})
        assert torch.load(tmp_path / f"{arch}.pt", weights_only=True)["layout"] == layouts.current(arch)
        load_generator(tmp_path / f"{arch}.pt")  # read back as it is


@pytest.mark.parametrize("layout, message", [
    (3, "has layout version 3, but this FashionGen reads up to 2; it was written by a newer FashionGen"),
    (0, "has layout version 0 and this FashionGen needs 2, with no conversion from 0; retrain it"),
])
def test_generator_files_of_unknown_layouts_are_refused_with_the_version(tmp_path, layout, message):
    spec = GeneratorSpec(z_dim=8, width=4, channels=1, image_size=28)
    path = tmp_path / "generator.pt"
    save_generator(path, build_generator(spec), spec, [], {"train": {}})
    payload = torch.load(path, weights_only=True)
    payload["layout"] = layout
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


def test_model_files_of_a_newer_layout_or_another_kind_are_refused(tmp_path):
    path = tmp_path / "evaluator.pt"
    make_evaluator(path)
    assert read_model_file(path, EVALUATOR)["layout"] == EVALUATOR.layout
    payload = torch.load(path, weights_only=True)
    save_model_file(path, EVALUATOR, {k: v for k, v in payload.items() if k not in ("format", "layout")},
                    layout=EVALUATOR.layout + 1)
    with pytest.raises(CheckpointError, match="evaluator layout version 2 is newer than this FashionGen reads"):
        read_model_file(path, EVALUATOR)
    with pytest.raises(CheckpointError, match=r"is not a FashionGen generator \(format 'fashiongen.evaluator.v1'"):
        load_generator(path)
