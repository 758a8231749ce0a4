"""Your own photo in the model (fashiongen/projection.py; `fashiongen project`, `generate --from`, `interpolate --from`).

Small untrained generators of every condition kind (tests/helpers.py), an untrained
evaluator as the ruler, and few steps: the properties hold for any generator.
"""

import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import make_evaluator, make_generator, make_varied_generator
from PIL import Image

from fashiongen.cli import main
from fashiongen.encoding import encode_images, load_encoder
from fashiongen.errors import ConfigError, FashionGenError
from fashiongen.file_digest import file_sha256
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.images import to_model_range
from fashiongen.model_files import ENCODER, save_model_file
from fashiongen.projection import (
    Settings,
    choice_slot,
    latent_walk,
    load_latent,
    load_ruler,
    project_image,
    read_latent,
)

KINDS = ("none", "label", "cluster", "encoding")
FAST = Settings(steps=60, starts=4, pool=32, candidates=2)
FAST_ARGS = ["--steps", "60", "--device", "cpu"]
ENCODING = torch.randn(1, 6, generator=torch.Generator().manual_seed(4))  # the encoding model draws its photos at it


def save_named_evaluator(path, classes, image_size=28):
    """An untrained evaluator that names ``classes`` (the evaluator's top classes start a label projection)."""
    make_evaluator(path, classes, image_size, seed=1)


def save_encoder(path, encoder_id="encoder-test", dim=6):
    """An untrained ResNet-18 encoder file with the id :func:`make_generator`'s encoding generator expects."""
    from fashiongen.models.encoder import Encoder

    torch.manual_seed(2)
    config = {"arch": "resnet18", "dim": dim, "num_classes": 10, "channels": 1, "keep_maxpool": True, "image_size": 28}
    model = Encoder("resnet18", dim, 10, 1, True)
    save_model_file(path, ENCODER, {"trained": True, "config": config, "state_dict": model.state_dict(),
                                    "id": encoder_id, "accuracy": 0.5, "weights": "none"})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("projection-models")
    for kind in KINDS:
        make_varied_generator(root / f"{kind}.pt", kind)
    save_named_evaluator(root / "evaluator.pt", [f"class {i}" for i in range(10)])
    make_evaluator(root / "other-classes-evaluator.pt")  # classes "0".."9": not the generators' names
    save_named_evaluator(root / "evaluator-32px.pt", [f"class {i}" for i in range(10)], image_size=32)
    save_encoder(root / "encoder.pt")
    return root


def write_photo(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def drawn_photo(models, kind, row=5):
    """A grey image (uint8 1×28×28) the generator itself drew from a known input, and that input's condition."""
    loaded = load_generator(models / f"{kind}.pt")
    z = noise(row + 1, loaded.spec.z_dim, 123)[row:]
    cond = {"label": torch.tensor([3]), "encoding": ENCODING}
    return generate_uint8(loaded.module, z, 1, "cpu", cond.get(kind, torch.empty(1, 0)))[0]


def png_pixels(path):
    return torch.from_numpy(np.asarray(Image.open(path)))


@pytest.mark.parametrize("kind", KINDS)
def test_a_generated_image_projects_far_closer_than_the_nearest_random_sample(models, kind):
    loaded = load_generator(models / f"{kind}.pt")
    ruler = load_ruler(models / "evaluator.pt", loaded)
    photo = drawn_photo(models, kind)
    encoding = encode_images(load_encoder(models / "encoder.pt"), photo[None]) if kind == "encoding" else None
    # an untrained evaluator's top classes are a guess: try every class (the start from them is tested below)
    latent, image, _ = project_image(loaded, ruler, photo, replace(FAST, candidates=10, starts=2), encoding)
    # the random samples get the photo's own class or encoding
    cond = {"label": torch.full((500,), 3), "encoding": ENCODING.expand(500, -1)}.get(kind, torch.empty(500, 0))
    samples = generate_uint8(loaded.module, noise(500, loaded.spec.z_dim, 7), 500, "cpu", cond)
    nearest = ruler.pairwise(photo[None], samples).min().item()
    assert latent.distance < 0.5 * nearest
    assert latent.distance == pytest.approx(ruler.pairwise(photo[None], image[None]).item(), abs=1e-4)


def test_the_same_seed_gives_the_same_latent_and_another_seed_another(models):
    loaded = load_generator(models / "label.pt")
    ruler = load_ruler(models / "evaluator.pt", loaded)
    photo = drawn_photo(models, "label")
    settings = replace(FAST, steps=20)
    first, second = (project_image(loaded, ruler, photo, settings)[0] for _ in range(2))
    assert torch.equal(first.z, second.z) and torch.equal(first.cond, second.cond)
    assert first.distance == second.distance
    assert not torch.equal(first.z, project_image(loaded, ruler, photo, replace(settings, seed=1))[0].z)


def test_a_label_projection_starts_from_the_classes_the_evaluator_predicts(models):
    loaded = load_generator(models / "label.pt")
    ruler = load_ruler(models / "evaluator.pt", loaded)
    photo = drawn_photo(models, "label")
    with torch.no_grad():
        top = torch.argsort(ruler.measure(to_model_range(photo[None]))[1][0], descending=True)[:2].tolist()
    latent, _, name = project_image(loaded, ruler, photo, replace(FAST, steps=10))
    assert int(latent.cond) in top and name == loaded.classes[int(latent.cond)]
    # an evaluator naming other classes cannot say which: the classes whose draws come closest are tried, and
    # they hold the class the photo was drawn with (3, drawn_photo's)
    other = load_ruler(models / "other-classes-evaluator.pt", loaded)
    assert int(project_image(loaded, other, photo, replace(FAST, steps=10))[0].cond) == 3


def test_a_cluster_latent_carries_choice_bits_that_draw_its_cluster(models):
    loaded = load_generator(models / "cluster.pt")
    ruler = load_ruler(models / "evaluator.pt", loaded)
    latent, image, name = project_image(loaded, ruler, drawn_photo(models, "cluster"), replace(FAST, steps=10))
    assert latent.cond is None and latent.z.shape == (loaded.spec.z_dim,)
    cluster = int(name.removeprefix("cluster "))
    assert int(loaded.module.choose(latent.z[None])) == cluster
    assert torch.equal(generate_uint8(loaded.module, latent.z[None], 1, "cpu", torch.empty(1, 0))[0], image)
    # a cluster of share 0 has no slot: it is never a candidate
    loaded.module.set_shares(torch.tensor([0.5, 0.0] + [0.0625] * 8))
    assert choice_slot(loaded.module, 1) is None and choice_slot(loaded.module, 0) is not None


def test_ruler_pairwise_is_the_distance_the_projection_minimises(models):
    loaded = load_generator(models / "none.pt")
    ruler = load_ruler(models / "evaluator.pt", loaded)
    images = generate_uint8(loaded.module, noise(6, loaded.spec.z_dim, 0), 6, "cpu", torch.empty(6, 0))
    target = to_model_range(images[:1])
    with torch.no_grad():
        direct = ruler.distance(to_model_range(images), target, ruler.measure(target)[0])
    assert torch.allclose(ruler.pairwise(images[:1], images)[0].float(), direct, atol=1e-5)
    assert direct[0].item() == pytest.approx(0.0, abs=1e-6) and (direct[1:] > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_project_writes_a_latent_that_generate_from_draws_again_pixel_for_pixel(models, kind, tmp_path, capsys):
    photo = write_photo(tmp_path / "my photo.png", drawn_photo(models, kind)[0].numpy())
    out = tmp_path / "out"
    assert main(["project", str(photo), "--out", str(out), "--checkpoint", str(models / f"{kind}.pt"),
                 "--evaluator", str(models / "evaluator.pt"), "--encoder", str(models / "encoder.pt"),
                 *FAST_ARGS]) == 0
    printed = capsys.readouterr().out
    assert "distance" in printed and str(out / "my photo.npz") in printed
    spec = load_generator(models / f"{kind}.pt").spec
    with np.load(out / "my photo.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    expected_keys = {"z", "condition", "generator_sha256", "distance", "photo"} | (
        {"cond"} if kind in ("label", "encoding") else set())
    assert set(arrays) == expected_keys
    assert arrays["z"].dtype == np.float32 and arrays["z"].shape == (spec.z_dim,)
    assert str(arrays["condition"]) == kind and str(arrays["photo"]) == "my photo.png"
    assert str(arrays["generator_sha256"]) == file_sha256(models / f"{kind}.pt")
    assert arrays["distance"].dtype == np.float64 and arrays["distance"].shape == ()
    if kind == "label":
        assert arrays["cond"].dtype == np.int64 and arrays["cond"].shape == ()
    if kind == "encoding":
        assert arrays["cond"].dtype == np.float32 and arrays["cond"].shape == (spec.cond_dim,)
    with zipfile.ZipFile(out / "my photo.npz") as archive:  # np.savez, not savez_compressed
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert Image.open(out / "my photo-compare.png").size == (2 * 28 + 3 * 2, 28 + 2 * 2)

    again = tmp_path / "again.npz"
    assert main(["generate", "--from", str(out / "my photo.npz"), "--checkpoint", str(models / f"{kind}.pt"),
                 "--out", str(again)]) == 0
    drawn = np.load(again)["images"]
    assert drawn.shape == (1, 1, 28, 28)
    assert np.array_equal(drawn[0, 0], np.asarray(Image.open(out / "my photo.png")))


def test_interpolate_from_one_latent_to_another_ends_at_both_reconstructions(models):
    for kind in KINDS:
        loaded = load_generator(models / f"{kind}.pt")
        ruler = load_ruler(models / "evaluator.pt", loaded)
        encoding = torch.randn(1, 6, generator=torch.Generator().manual_seed(9)) if kind == "encoding" else None
        ends = [project_image(loaded, ruler, drawn_photo(models, kind, row), replace(FAST, steps=5), encoding)
                for row in (1, 2)]
        frames = latent_walk(loaded, ends[0][0], ends[1][0], 6)
        assert frames.shape == (6, 1, 28, 28) and frames.dtype == torch.uint8
        assert torch.equal(frames[0], ends[0][1]) and torch.equal(frames[-1], ends[1][1]), kind


def test_interpolate_command_walks_between_two_projected_photos(models, tmp_path):
    checkpoint = str(models / "label.pt")
    photos = [write_photo(tmp_path / f"{name}.png", drawn_photo(models, "label", row)[0].numpy())
              for name, row in (("a", 1), ("b", 2))]
    assert main(["project", *map(str, photos), "--out", str(tmp_path / "out"), "--checkpoint", checkpoint,
                 "--evaluator", str(models / "evaluator.pt"), "--steps", "5"]) == 0
    strip = tmp_path / "walk.png"
    assert main(["interpolate", "--from", str(tmp_path / "out" / "a.npz"), "--to", str(tmp_path / "out" / "b.npz"),
                 "--checkpoint", checkpoint, "--n-steps", "5", "--out", str(strip)]) == 0
    grid = np.asarray(Image.open(strip).convert("L"))
    first, last = grid[2:30, 2:30], grid[2:30, 2 + 30 * 4:30 + 30 * 4]  # tiles of 28 px, 2 px apart
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "out" / "a.png")))
    assert np.array_equal(last, np.asarray(Image.open(tmp_path / "out" / "b.png")))


def test_an_rgb_photo_with_alpha_is_converted_for_a_grey_generator(models, tmp_path, capsys):
    rgba = np.zeros((60, 40, 4), dtype=np.uint8)
    rgba[10:50, 10:30] = (200, 40, 40, 255)  # a red garment on a transparent background
    photo = write_photo(tmp_path / "shirt.png", rgba)
    assert main(["project", str(photo), "--out", str(tmp_path / "out"), "--checkpoint", str(models / "none.pt"),
                 "--evaluator", str(models / "evaluator.pt"), "--steps", "3"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "shirt.png")).shape == (28, 28)


def project_args(models, tmp_path, photo, kind="label", **override):
    args = {"--checkpoint": str(models / f"{kind}.pt"), "--evaluator": str(models / "evaluator.pt"),
            "--encoder": str(models / "encoder.pt"), "--out": str(tmp_path / "out"), **override}
    return ["project", *map(str, photo if isinstance(photo, list) else [photo]),
            *[part for pair in args.items() for part in pair], "--steps", "2"]


def error_of(argv, capsys) -> str:
    assert main(argv) == FashionGenError.exit_code
    message = capsys.readouterr().err
    assert message.startswith("error: ") and message.count("\n") == 1
    return message


def test_bad_inputs_to_project_get_one_clear_error(models, tmp_path, capsys):
    good = write_photo(tmp_path / "good.png", np.zeros((28, 28), dtype=np.uint8))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert "notes.png is not a readable image" in error_of(project_args(models, tmp_path, text), capsys)
    assert "does not exist" in error_of(project_args(models, tmp_path, tmp_path / "missing.jpg"), capsys)
    message = error_of(project_args(models, tmp_path, good, **{"--checkpoint": str(models / "evaluator.pt")}), capsys)
    assert "is not a FashionGen generator" in message and "evaluator" in message
    message = error_of(project_args(models, tmp_path, good, **{"--evaluator": str(models / "label.pt")}), capsys)
    assert "is not a FashionGen evaluator" in message
    message = error_of(project_args(models, tmp_path, good, **{"--evaluator": str(models / "evaluator-32px.pt")}), capsys)
    assert "measures 1-channel 32 px images" in message
    save_encoder(tmp_path / "other-encoder.pt", encoder_id="encoder-other")
    message = error_of(project_args(models, tmp_path, good, "encoding", **{"--encoder": str(tmp_path / "other-encoder.pt")}),
                       capsys)
    assert "encoder-other" in message and "--encoder" in message
    (tmp_path / "b").mkdir()
    twin = write_photo(tmp_path / "b" / "good.jpg", np.zeros((28, 28), dtype=np.uint8))
    assert "would write the same files" in error_of(project_args(models, tmp_path, [good, twin]), capsys)
    message = error_of(project_args(models, tmp_path, good, **{"--out": str(tmp_path)}), capsys)
    assert "would be overwritten" in message
    assert not (tmp_path / "out").exists()  # nothing written by a refused request


def test_a_latent_of_another_generator_or_no_latent_at_all_is_refused(models, tmp_path, capsys):
    photo = write_photo(tmp_path / "p.png", drawn_photo(models, "label")[0].numpy())
    assert main(project_args(models, tmp_path, photo)) == 0
    latent = str(tmp_path / "out" / "p.npz")
    make_generator(tmp_path / "retrained.pt", "label", seed=5)  # same shape, other weights
    message = error_of(["generate", "--from", latent, "--checkpoint", str(tmp_path / "retrained.pt"),
                        "--out", str(tmp_path / "x.png")], capsys)
    assert "projected into another generator file" in message and "fashiongen project" in message
    message = error_of(["generate", "--from", latent, "--checkpoint", str(models / "cluster.pt"),
                        "--out", str(tmp_path / "x.png")], capsys)
    assert "its condition is 'label', the generator's 'cluster'" in message
    assert "its z has 16 values, the generator takes 32" in message
    with pytest.raises(FashionGenError, match="another generator file"):
        load_latent(latent, load_generator(tmp_path / "retrained.pt"), tmp_path / "retrained.pt")

    images = tmp_path / "images.npz"
    assert main(["generate", "--checkpoint", str(models / "label.pt"), "--n", "2", "--out", str(images)]) == 0
    with pytest.raises(FashionGenError, match="lacks z, condition"):
        read_latent(images)
    assert "is not a latent file" in error_of(["generate", "--from", str(photo), "--checkpoint", str(models / "label.pt"),
                                                "--out", str(tmp_path / "x.png")], capsys)
    checkpoint = ["--checkpoint", str(models / "label.pt")]
    assert "not --n 3" in error_of(["generate", "--from", latent, *checkpoint, "--n", "3", "--out", "x.png"], capsys)
    assert "drop --seed and --truncation." in error_of(["generate", "--from", latent, *checkpoint, "--seed", "5",
                                                         "--truncation", "0.5", "--out", "x.png"], capsys)
    assert "drop --seed." in error_of(["interpolate", "--from", latent, "--to", latent, *checkpoint, "--seed", "0",
                                       "--out", "w.png"], capsys)
    assert "add --to B.npz" in error_of(["interpolate", "--from", latent, *checkpoint, "--out", "w.png"], capsys)
    assert "walk from another one with --from" in error_of(["interpolate", "--to", latent, *checkpoint, "--label", "1",
                                                            "--out", "w.png"], capsys)


def test_generate_from_a_label_latent_can_change_its_class(models, tmp_path):
    photo = write_photo(tmp_path / "p.png", drawn_photo(models, "label")[0].numpy())
    assert main(project_args(models, tmp_path, photo)) == 0
    latent = read_latent(tmp_path / "out" / "p.npz")
    other = (int(latent.cond) + 1) % 10
    assert main(["generate", "--from", str(tmp_path / "out" / "p.npz"), "--checkpoint", str(models / "label.pt"),
                 "--label", str(other), "--out", str(tmp_path / "other.npz")]) == 0
    loaded = load_generator(models / "label.pt")
    expected = generate_uint8(loaded.module, latent.z[None], 1, "cpu", torch.tensor([other]))
    assert np.array_equal(np.load(tmp_path / "other.npz")["images"], expected.numpy())


def test_projection_settings_and_photo_shape_are_checked(models):
    loaded = load_generator(models / "label.pt")
    ruler = load_ruler(models / "evaluator.pt", loaded)
    with pytest.raises(ConfigError, match="the generator draws uint8"):
        project_image(loaded, ruler, torch.zeros(3, 28, 28, dtype=torch.uint8), FAST)
    with pytest.raises(ConfigError, match="starts <= pool"):
        project_image(loaded, ruler, torch.zeros(1, 28, 28, dtype=torch.uint8), replace(FAST, starts=99))
    encoding = load_generator(models / "encoding.pt")
    with pytest.raises(ConfigError, match="photo's encoding"):
        project_image(encoding, ruler, torch.zeros(1, 28, 28, dtype=torch.uint8), FAST)
