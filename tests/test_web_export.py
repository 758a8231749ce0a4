"""``fashiongen export --format web``: the page runs the generator in headless Chromium, offline, from file://.

Every check compares the page with PyTorch: the noise of a seed bit for bit, the
grid of a seed and condition within one grey level (the CLI's own ``generate``
for one of them), truncation, walks, latent files; and the page never asks the
network for anything and logs no error.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    REPO_ROOT,
    chromium_executable,
    make_evaluator,
    make_prepared,
    make_varied_generator,
)
from PIL import Image

from fashiongen.analysis.interpolation import walk
from fashiongen.analysis.truncation import truncated_noise
from fashiongen.atomic import save_npy, write_json
from fashiongen.cli import main
from fashiongen.errors import FashionGenError
from fashiongen.gan.artifact import load_generator, save_generator
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.registry import write_registry
from fashiongen.report import web_page_link
from fashiongen.web_export import export_web
from fashiongen.web_folder import EXPORTED_FILES, PAGE_ASSETS, read_page_meta
from fashiongen.web_runtime import FILES, runtime_folder

KINDS = ("label", "none", "cluster", "encoding")
SEED = 12345678901234567890  # above 2**63: every bit of the seed counts on both sides
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def runtime() -> Path:
    """onnxruntime-web's files: from the cache `.ci/setup` filled (or the npm registry, the first time)."""
    return runtime_folder()


def _encoding_data(root: Path) -> tuple[Path, Path]:
    prepared, encodings = root / "prepared", root / "encodings"
    make_prepared(prepared, n_train=20, n_test=40)
    write_json(encodings / "meta.json", {"used": True, "dim": 6, "encoder": "encoder-test"})
    rows = np.random.default_rng(3).standard_normal((40, 6)).astype(np.float32)
    save_npy(encodings / "test_encodings.npy", rows)
    return encodings, prepared


@pytest.fixture(scope="module")
def pages(tmp_path_factory, runtime) -> dict[str, tuple[Path, Path]]:
    """For each condition kind: (generator file, its exported page folder)."""
    root = tmp_path_factory.mktemp("web")
    encodings, prepared = _encoding_data(root)
    made = {}
    for kind in KINDS:
        checkpoint = root / kind / "generator.pt"
        checkpoint.parent.mkdir()
        make_varied_generator(checkpoint, kind, seed=KINDS.index(kind))
        folder = root / kind / "web"
        export_web(load_generator(checkpoint), checkpoint, folder, runtime, encodings=encodings, prepared=prepared)
        made[kind] = (checkpoint, folder)
    return made


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Page:
    """One opened page export: its Playwright page, the console errors and any request that left the folder."""

    def __init__(self, browser, folder: Path):
        self.page = browser.new_page(viewport={"width": 1100, "height": 1400}, accept_downloads=True)
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: None if request.url.startswith(("file:", "blob:", "data:"))
                     else self.outside.append(request.url))
        self.page.goto((folder / "index.html").as_uri())
        self.page.wait_for_function("['ready', 'error'].includes(document.body.dataset.status)", timeout=60_000)
        assert self.status() == "ready", self.page.inner_text("#error")

    def status(self) -> str:
        return self.page.evaluate("document.body.dataset.status")

    def settled(self, condition: str) -> None:
        self.page.wait_for_function(f"document.body.dataset.status !== 'drawing' && ({condition})", timeout=30_000)

    def draw(self, seed: int, condition: str | None, count: int = 64, psi: float = 1.0) -> torch.Tensor:
        """Set the controls as a person would, click Draw; the grid (uint8 N × C × H × W)."""
        draws = self.page.evaluate("window.fashiongenPage.draws")
        if condition is not None:
            self.page.select_option("#condition", condition)
        self.page.select_option("#count", str(count))
        self.page.fill("#seed", str(seed))
        self.page.eval_on_selector("#psi", "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", str(psi))
        self.page.click("#draw")
        self.settled(f"window.fashiongenPage.draws > {draws} && window.fashiongenPage.grid.seed === '{seed}'"
                     f" && window.fashiongenPage.grid.psi === {psi} && window.fashiongenPage.grid.n === {count}")
        return self.pixels("grid")

    def walk(self, mode: str, choices: dict[str, str], fields: dict[str, str]) -> torch.Tensor:
        """Pick the walk ``mode``, set its selects (``choices``) and text fields, click Draw walk; the strip."""
        walks = self.page.evaluate("window.fashiongenPage.timings.filter(t => t.what === 'walk').length")
        self.page.select_option("#walk-mode", mode)
        for selector, value in choices.items():
            self.page.select_option(selector, value)
        for selector, value in fields.items():
            self.page.fill(selector, value)
        self.page.click("#draw-walk")
        self.settled(f"window.fashiongenPage.timings.filter(t => t.what === 'walk').length > {walks}")
        return self.pixels("strip")

    def pixels(self, which: str) -> torch.Tensor:
        grid = self.page.evaluate(f"(() => {{ const g = window.fashiongenPage.{which}; "
                                  "return {n: g.n, images: Array.from(g.images)}; })()")
        return torch.tensor(grid["images"], dtype=torch.uint8).reshape(grid["n"], 1, 28, 28)

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], f"the page asked the network for {self.outside}"
        self.page.close()


def _reference(checkpoint: Path, n: int, seed: int, psi: float, cond: torch.Tensor) -> torch.Tensor:
    loaded = load_generator(checkpoint)
    return generate_uint8(loaded.module, truncated_noise(n, loaded.spec.z_dim, seed, psi), 64, "cpu", cond)


def _grey_levels_apart(a: torch.Tensor, b: torch.Tensor) -> int:
    assert a.shape == b.shape
    assert b.float().std() > 40, "the reference images must vary, or equality within a grey level proves little"
    return int((a.int() - b.int()).abs().max())


def _condition(kind: str, checkpoint: Path, folder: Path, n: int) -> tuple[str | None, torch.Tensor]:
    """A condition to pick in the page and the same for PyTorch."""
    if kind == "label":
        return "3", torch.full((n,), 3)
    if kind == "encoding":
        bank = read_page_meta(folder)["bank"]
        return "2", torch.tensor(bank[2]["code"]).expand(n, -1)
    return None, torch.empty(n, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_seed_draws_the_images_pytorch_draws(kind, pages, browser):
    checkpoint, folder = pages[kind]
    page = Page(browser, folder)
    choice, cond = _condition(kind, checkpoint, folder, 64)
    plain = page.draw(SEED, choice)
    assert _grey_levels_apart(plain, _reference(checkpoint, 64, SEED, 1.0, cond)) <= 1
    truncated = page.draw(SEED, choice, psi=0.5)
    assert _grey_levels_apart(truncated, _reference(checkpoint, 64, SEED, 0.5, cond)) <= 1
    assert (truncated.int() - plain.int()).abs().max() > 10, "changing ψ must change the grid"
    page.close()


def test_the_page_noise_is_the_cli_noise_bit_for_bit(pages, browser):
    page = Page(browser, pages["none"][1])
    for seed, z_dim in ((0, 100), (1, 7), (2**32 + 5, 16), (2**64 - 1, 3), (SEED, 128)):
        drawn = page.page.evaluate(f"Array.from(FashionGenNoise.noise(3, {z_dim}, {seed}n))")
        assert torch.equal(torch.tensor(drawn, dtype=torch.float32).reshape(3, z_dim), noise(3, z_dim, seed)), seed
    page.close()


def test_the_class_grid_is_fashiongen_generate(pages, browser, tmp_path, capsys):
    checkpoint, folder = pages["label"]
    page = Page(browser, folder)
    drawn = page.draw(7, "", count=32, psi=0.7)  # "all classes, in turn": the CLI's default without --label
    page.close()
    out = tmp_path / "samples.npz"
    assert main(["generate", "--checkpoint", str(checkpoint), "--seed", "7", "--n", "32", "--truncation", "0.7",
                 "--out", str(out)]) == 0
    assert _grey_levels_apart(drawn, torch.from_numpy(np.load(out)["images"])) <= 1


def test_walks_end_on_their_samples(pages, browser):
    checkpoint, folder = pages["label"]
    page = Page(browser, folder)
    strip = page.walk("conditions", {"#walk-from": "1", "#walk-to": "8"}, {"#walk-seed": "42", "#frames": "6"})
    cli_walk = walk(load_generator(checkpoint), 6, 42, label="1", to="8")  # fashiongen interpolate --label 1 --to 8
    assert _grey_levels_apart(strip, cli_walk) <= 1
    assert (strip[0].int() - strip[-1].int()).abs().max() > 10

    strip = page.walk("seeds", {"#walk-at": "5"}, {"#walk-seed-a": "3", "#walk-seed-b": "4"})
    ends = torch.cat([_reference(checkpoint, 1, seed, 1.0, torch.tensor([5])) for seed in (3, 4)])
    assert _grey_levels_apart(strip[[0, -1]], ends) <= 1
    page.close()


def _latent(path: Path, checkpoint: Path, z: torch.Tensor, cond: int, condition: str = "label") -> Path:
    np.savez(path, z=z.numpy().astype(np.float32), cond=np.array(cond, dtype=np.int64), condition=np.array(condition),
             generator_sha256=np.array(hashlib.sha256(checkpoint.read_bytes()).hexdigest()),
             distance=np.array(0.125), photo=np.array(path.stem + ".jpg"))
    return path


def test_latent_files_draw_their_image_and_walk(pages, browser, tmp_path):
    checkpoint, folder = pages["label"]
    generator = load_generator(checkpoint).module.eval()
    za, zb = noise(2, 16, 99)
    files = [_latent(tmp_path / "a.npz", checkpoint, za, 4), _latent(tmp_path / "b.npz", checkpoint, zb, 6)]
    page = Page(browser, folder)
    page.page.set_input_files("#latent-files", [str(f) for f in files])
    page.settled("window.fashiongenPage.latents.length === 2")
    with torch.no_grad():
        expected = generate_uint8(generator, torch.stack([za, zb]), 2, "cpu", torch.tensor([4, 6]))
    drawn = torch.tensor(page.page.evaluate("window.fashiongenPage.latents.flatMap(l => Array.from(l.image))"),
                         dtype=torch.uint8).reshape(2, 1, 28, 28)
    assert _grey_levels_apart(drawn, expected) <= 1
    assert page.page.eval_on_selector("#walk-mode", "e => e.value") == "latents"
    assert _grey_levels_apart(page.walk("latents", {}, {})[[0, -1]], expected) <= 1
    page.close()


def test_a_photo_projected_by_the_cli_opens_in_the_page(pages, browser, tmp_path, capsys):
    """`fashiongen project` writes the latent file; the page draws it as the projection's own reconstruction."""
    checkpoint, folder = pages["label"]
    make_evaluator(tmp_path / "evaluator.pt", [f"class {i}" for i in range(10)], seed=1)
    photo = tmp_path / "my photo.png"
    Image.fromarray(_reference(checkpoint, 1, 77, 1.0, torch.tensor([2]))[0, 0].numpy()).save(photo)
    assert main(["project", str(photo), "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                 "--evaluator", str(tmp_path / "evaluator.pt"), "--steps", "20", "--device", "cpu"]) == 0
    page = Page(browser, folder)
    page.page.set_input_files("#latent-files", str(tmp_path / "out" / "my photo.npz"))
    page.settled("window.fashiongenPage.latents.length === 1")
    drawn = torch.tensor(page.page.evaluate("Array.from(window.fashiongenPage.latents[0].image)"), dtype=torch.uint8)
    reconstruction = torch.from_numpy(np.asarray(Image.open(tmp_path / "out" / "my photo.png")))
    assert _grey_levels_apart(drawn.reshape(1, 1, 28, 28), reconstruction.reshape(1, 1, 28, 28)) <= 1
    assert "my photo.png" in page.page.inner_text("#latent-list")
    page.close()


def test_a_bad_latent_is_refused_where_it_was_loaded_and_a_good_one_clears_the_message(pages, browser, tmp_path):
    checkpoint, folder = pages["label"]
    z = noise(1, 16, 0)[0]
    other = _latent(tmp_path / "other.npz", pages["none"][0], z, 2)
    fractional = tmp_path / "fractional.npz"
    np.savez(fractional, **{**dict(np.load(_latent(tmp_path / "f.npz", checkpoint, z, 2))), "cond": np.array(3.5, np.float32)})
    page = Page(browser, folder)
    for path, message in ((other, "other.npz: it was projected into another generator file"),
                          (fractional, "fractional.npz: its cond is not one class index (int64)"),
                          (tmp_path / "not-a-zip.npz", "not-a-zip.npz: not a latent file of fashiongen project")):
        if not path.exists():
            path.write_bytes(b"PNG? no: text")
        page.page.set_input_files("#latent-files", str(path))
        page.page.wait_for_function("document.body.dataset.status === 'error'")
        assert message in page.page.inner_text("#latent-error")
        assert page.page.is_hidden("#error") and page.page.evaluate("window.fashiongenPage.latents.length") == 0
        page.page.evaluate("document.body.dataset.status = 'ready'")
    page.page.set_input_files("#latent-files", str(_latent(tmp_path / "good.npz", checkpoint, z, 2)))
    page.settled("window.fashiongenPage.latents.length === 1 && document.body.dataset.status === 'ready'")
    assert page.page.is_hidden("#latent-error")
    page.close()


def test_the_photo_walk_goes_between_the_two_photos_picked(pages, browser, tmp_path):
    checkpoint, folder = pages["label"]
    zs = noise(3, 16, 5)
    files = [str(_latent(tmp_path / f"p{i}.npz", checkpoint, zs[i], i)) for i in range(3)]
    page = Page(browser, folder)
    page.page.set_input_files("#latent-files", files)
    page.settled("window.fashiongenPage.latents.length === 3")
    strip = page.walk("latents", {"#walk-latent-a": "0", "#walk-latent-b": "2"}, {"#frames": "4"})
    with torch.no_grad():
        ends = generate_uint8(load_generator(checkpoint).module, zs[[0, 2]], 2, "cpu", torch.tensor([0, 2]))
    assert _grey_levels_apart(strip[[0, -1]], ends) <= 1
    assert "interpolate --from A.npz --to B.npz --n-steps 4" in page.page.inner_text("#walk-caption")
    page.close()


def test_save_image_downloads_the_grid(pages, browser, tmp_path):
    page = Page(browser, pages["cluster"][1])
    page.draw(5, None, count=16)
    with page.page.expect_download() as download:
        page.page.click("#save-grid")
    saved = tmp_path / "grid.png"
    download.value.save_as(saved)
    width, height = page.page.evaluate("[document.getElementById('grid').width, document.getElementById('grid').height]")
    with Image.open(saved) as image:
        assert image.size == (width, height) and image.size[0] > 8 * 28
    page.close()


def test_the_page_describes_the_model(pages):
    checkpoint, folder = pages["label"]
    meta = read_page_meta(folder)
    assert meta["condition"] == "label" and meta["classes"] == [f"class {i}" for i in range(10)]
    assert meta["generator_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta["scores"] is None  # no registry entry beside this test generator: the page says "not scored"
    assert len(meta["class_rows"]) == 10
    assert len(read_page_meta(pages["encoding"][1])["bank"]) == 32


def test_the_page_shows_the_scores_of_the_registry_entry_that_describes_its_generator(runtime, browser, tmp_path):
    checkpoint = tmp_path / "models" / "generator.pt"
    checkpoint.parent.mkdir()
    make_varied_generator(checkpoint, "label")
    loaded = load_generator(checkpoint)
    save_generator(checkpoint, loaded.module, loaded.spec, loaded.classes, {"model": {"condition": "label"}})
    loaded = load_generator(checkpoint)
    metrics = {"fid": 12.3456, "fid_floor": 0.9, "recall": 0.55, "features": "evaluator-x", "num_samples": 1000}
    write_registry(checkpoint.with_name("dvc.yaml"), checkpoint, loaded.spec.to_dict(), loaded.classes, metrics,
                   loaded.params)
    folder = tmp_path / "web"
    export_web(loaded, checkpoint, folder, runtime)
    assert read_page_meta(folder)["scores"] == metrics
    page = Page(browser, folder)
    assert "12.35 beside a real-data floor of 0.90 (recall 0.55; 1000 samples, ruler evaluator-x)" in \
        page.page.inner_text("#model-info")
    page.close()

    save_generator(checkpoint, loaded.module, loaded.spec, loaded.classes, {"model": {"condition": "other"}})
    export_web(load_generator(checkpoint), checkpoint, folder, runtime)  # the entry now describes another file
    assert read_page_meta(folder)["scores"] is None


def test_the_export_refuses_a_folder_of_other_files(pages, tmp_path, capsys):
    checkpoint, _ = pages["none"]
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "web", "--out", str(folder)]) != 0
    assert "holds files the export did not write (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_the_export_writes_its_listed_files_and_keeps_a_users_files_in_an_earlier_export(pages, tmp_path, capsys):
    checkpoint, folder = pages["none"]
    written = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert written == EXPORTED_FILES  # the list check_target trusts is the list export_web writes
    site = tmp_path / "web"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "web", "--out", str(site)]) == 0
    (site / "CNAME").write_text("gen.example.com")
    (site / "mine").mkdir()
    (site / "mine" / "photo.npz").write_bytes(b"a latent")
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "web", "--out", str(site)]) != 0
    assert "CNAME, mine/photo.npz" in capsys.readouterr().err
    assert (site / "CNAME").read_text() == "gen.example.com" and (site / "mine" / "photo.npz").is_file()


def test_the_cli_export_replaces_an_earlier_page(pages, tmp_path, capsys):
    label, none = pages["label"][0], pages["none"][0]
    out = tmp_path / "web"
    for checkpoint in (label, none):
        assert main(["export", "--checkpoint", str(checkpoint), "--format", "web", "--out", str(out)]) == 0
    assert read_page_meta(out)["condition"] == "none"
    assert "open it in a browser" in capsys.readouterr().out


def test_runtime_sources_are_checked(tmp_path, monkeypatch, runtime):
    monkeypatch.setenv("FASHIONGEN_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "node_modules" / "onnxruntime-web"
    (package / "dist").mkdir(parents=True)
    for name in FILES:
        (package / name).write_bytes((runtime / Path(name).name).read_bytes())
    folder = runtime_folder(package)  # an unpacked package
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(name).name for name in FILES)

    tampered = tmp_path / "tampered.tgz"
    (package / "dist" / "ort.wasm.min.js").write_text("alert(1)")
    with tarfile.open(tampered, "w:gz") as archive:
        archive.add(package, arcname="package")
    with pytest.raises(FashionGenError, match="is not the file of onnxruntime-web"):
        runtime_folder(tampered)
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(FashionGenError, match="not an npm package tarball.*npm pack"):
        runtime_folder(tmp_path / "junk.tgz")

    (folder / "ort-wasm-simd-threaded.wasm").write_bytes(b"damaged")
    with pytest.raises(FashionGenError, match="damaged.*delete that folder"):
        runtime_folder()


def test_an_unreachable_registry_says_how_to_get_the_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHIONGEN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9")
    with pytest.raises(FashionGenError, match="could not download onnxruntime-web.*npm pack onnxruntime-web@"):
        runtime_folder()
    assert not (tmp_path / "empty-cache" / "onnxruntime-web-1.31.1").exists()


def test_the_report_links_to_the_page(pages, tmp_path):
    checkpoint, folder = pages["label"]
    link = web_page_link(folder, tmp_path / "report.html", checkpoint)
    assert link is not None and 'href="' in link and link.count("index.html") >= 2 and "another generator" not in link
    target = link.split('href="')[1].split('"')[0]
    assert (tmp_path / target).resolve() == (folder / "index.html").resolve()
    assert "another generator file" in web_page_link(folder, tmp_path / "report.html", pages["none"][0])
    assert web_page_link(tmp_path, tmp_path / "report.html", checkpoint) is None  # no export there: no link


def test_the_web_assets_ship_with_the_package():
    """pyproject's package data covers every file the export copies (an installed wheel has them too)."""
    import fnmatch
    import tomllib

    globs = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fashiongen"]
    for name in PAGE_ASSETS:
        assert any(fnmatch.fnmatch(f"web/{name}", pattern) for pattern in globs), name
