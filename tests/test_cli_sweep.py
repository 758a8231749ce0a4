"""Property-based sweep of the command line: every subcommand, arbitrary argument values, no traceback.

Each example calls ``fashiongen.cli.main(argv)`` in-process and checks that it
ends with its result (exit 0; ``compare`` may exit 1 for a regression) or with
one ``error:`` line and exit 2 (argparse's own usage errors also exit 2).
Argument values: huge, negative, zero and odd integers, odd strings (including
bytes that are not UTF-8, as a shell passes them), missing, empty, binary and
folder paths, and well-formed files of each kind.

One restriction keeps it fast: a ``--n`` or ``--n-steps`` that would really be
drawn is at most 300 (one in the millions is valid and only slow; huge values,
from 10**8 to thousands of digits, are swept, and refused for memory or image
size before any sampling). Names and paths go up to thousands of characters.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashiongen.cli import main
from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator

SWEEP = settings(max_examples=int(os.environ.get("FASHIONGEN_SWEEP_EXAMPLES", 60)), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow], derandomize="FASHIONGEN_SWEEP_EXAMPLES" not in os.environ)

# What a user can type: any text but NUL (argv cannot hold it); undecodable bytes arrive as surrogate escapes.
odd_text = st.one_of(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24),
    st.binary(min_size=1, max_size=12).filter(lambda b: b"\x00" not in b).map(os.fsdecode),
    st.sampled_from(["", " ", "-", "--", "-1", "..", "/", "~", "café.png", "a b.png", "x" * 300,
                     "x" * 5000, "a/" * 3000 + "b.png", "é" * 200, "9" * 5000]),  # longer than any name or path
)
odd_int = st.one_of(
    st.integers(-10, 300),
    st.integers(min_value=10**12),
    st.integers(max_value=-1),
    st.sampled_from([str(2**63), str(2**64 - 1), str(2**64), "1e3", "0x10", " 7", "7 ", "٣", "1_000", "9" * 5000,
                     "nan", "inf", "+5", "-0"]),
).map(str)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Well-formed and odd files of every kind the CLI reads, and a scratch working folder."""
    from helpers import fake_results_repo

    root = tmp_path_factory.mktemp("sweep")
    torch.manual_seed(0)
    for name, spec in (("generator.pt", GeneratorSpec(8, 8, 1, 28)),
                       ("label_generator.pt", GeneratorSpec(8, 8, 1, 28, condition="label", num_classes=10, cond_dim=4)),
                       ("encoding_generator.pt", GeneratorSpec(8, 8, 1, 28, condition="encoding", cond_dim=4, encoder="encoder-x"))):
        save_generator(root / name, build_generator(spec), spec, [f"class {i}" for i in range(10)], {})
    metrics = {"fid": 20.0, "kid_mean": 0.5, "is_mean": 6.0, "num_samples": 1000, "features": "evaluator-a"}
    (root / "metrics.json").write_text(json.dumps(metrics))
    (root / "worse.json").write_text(json.dumps({**metrics, "fid": 40.0}))
    (root / "nan.json").write_text(json.dumps(metrics).replace("20.0", "NaN"))
    (root / "null.json").write_text(json.dumps({**metrics, "fid": None}))
    (root / "list.json").write_text("[1, 2]")
    (root / "tolerances.yaml").write_text("fid:\n  relative: 0.1\n")
    (root / "bad_tolerances.yaml").write_text("fid:\n  relative: 5%\n")
    (root / "empty").write_bytes(b"")
    (root / "binary.bin").write_bytes(np.random.default_rng(0).bytes(256))
    (root / "folder").mkdir()
    from PIL import Image

    Image.fromarray(np.full((40, 30, 3), 128, dtype=np.uint8)).save(root / "photo.png")
    fake_results_repo(root / "repo", run_pipeline=False)
    work = root / "work"
    work.mkdir()
    before = Path.cwd()
    os.chdir(work)  # defaults such as report.html and models/generator.pt resolve here
    yield root
    os.chdir(before)


def paths(files: Path, outputs: bool = False):
    existing = ["generator.pt", "label_generator.pt", "encoding_generator.pt", "metrics.json", "worse.json", "nan.json", "null.json", "list.json",
                "tolerances.yaml", "bad_tolerances.yaml", "empty", "binary.bin", "folder", "photo.png", "repo",
                "missing.png", "folder/deeper/out.png", "empty/out.png"]
    choices = st.sampled_from([str(files / name) for name in existing])
    if outputs:
        suffix = st.sampled_from([".png", ".jpg", ".jpeg", ".webp", ".npz", ".PNG", ".gif", "", ".png/"])
        choices = st.one_of(choices, st.builds(lambda s: str(files / "out" / f"x{s}"), suffix),
                            st.just(str(files / "out" / os.fsdecode(b"caf\xe9.png"))))  # a Latin-1 name
    return st.one_of(choices, odd_text)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    # streams like a terminal's: UTF-8, strict on stdout, backslashreplace on stderr (Python's defaults)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse: --help, --version, usage errors
            status = exit_.code if isinstance(exit_.code, int) else 2
    out.flush()
    err.flush()
    text = [stream.buffer.getvalue().decode("utf-8", "backslashreplace") for stream in (out, err)]
    return status, text[0], text[1]


def assert_result_or_one_error(argv, status, stderr, allowed=(0, 2)):
    assert "Traceback" not in stderr, (argv, stderr)
    assert status in allowed, (argv, status, stderr)
    errors = [line for line in stderr.splitlines() if "error:" in line]
    if status == 2:
        assert len(errors) == 1, (argv, stderr)  # ours: "error: ...", argparse's: "fashiongen generate: error: ..."
    else:
        assert errors == [], (argv, stderr)


def options(draw, files, spec):
    """Any subset of the options in ``spec`` ({flag: value strategy or None for a switch}), in any order."""
    argv = []
    for flag in draw(st.lists(st.sampled_from(sorted(spec)), unique=True)):
        argv += [flag] if spec[flag] is None else [flag, draw(spec[flag])]
    return argv


@given(data=st.data())
@SWEEP
def test_generate_never_tracebacks(files, data):
    draw = data.draw
    spec = {"--checkpoint": paths(files), "--seed": odd_int, "--nrow": odd_int, "--label": odd_text,
            "--like": paths(files), "--encoder": paths(files),
            "--device": st.sampled_from(["auto", "cpu", "cuda", "gpu", ""])}
    checkpoint = draw(st.sampled_from([files / name for name in ("generator.pt", "label_generator.pt", "encoding_generator.pt")]))
    argv = ["generate", "--checkpoint", str(checkpoint), "--n", draw(odd_int), "--out", draw(paths(files, outputs=True))]
    argv += options(draw, files, spec)
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr)


@given(data=st.data())
@SWEEP
def test_generate_draws_what_it_says_when_it_succeeds(files, data, tmp_path_factory):
    n = data.draw(st.integers(1, 40))
    nrow = data.draw(st.one_of(st.none(), st.integers(1, 10**30)))
    seed = data.draw(st.integers(0, 2**64 - 1))
    out = files / "draws" / f"x{data.draw(st.sampled_from(['.png', '.webp', '.jpg', '.npz']))}"
    argv = ["generate", "--checkpoint", str(files / "generator.pt"), "--n", str(n), "--seed", str(seed), "--out", str(out)]
    argv += [] if nrow is None else ["--nrow", str(nrow)]
    status, stdout, stderr = run_cli(argv)
    assert (status, stderr) == (0, "") and stdout == f"wrote {n} images to {out}\n"
    if out.suffix == ".npz":
        assert np.load(out)["images"].shape == (n, 1, 28, 28)
    else:
        from PIL import Image

        per_row = min(nrow or int(n**0.5), n)
        rows = -(-n // per_row)
        assert Image.open(out).size == ((28, 28) if n == 1 else (per_row * 30 + 2, rows * 30 + 2))


@given(data=st.data())
@SWEEP
def test_compare_never_tracebacks(files, data):
    draw = data.draw
    argv = ["compare", draw(paths(files)), draw(paths(files))]
    argv += options(draw, files, {"--tolerances": paths(files), "--allow-ruler-change": None})
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr, allowed=(0, 1, 2))


@given(data=st.data())
@settings(SWEEP, max_examples=max(SWEEP.max_examples // 3, 1))
def test_report_never_tracebacks(files, data):
    draw = data.draw
    rev = st.one_of(odd_text, st.sampled_from(["HEAD", "HEAD~3", "master", "main", "@{u}", ":/x", "refs/exps", "-"]))
    argv = ["report", *options(draw, files, {"--repo": paths(files), "--out": paths(files, outputs=True)})]
    for _ in range(draw(st.integers(0, 2))):
        argv += ["--exp", draw(rev)]
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr)


@given(argv=st.lists(st.one_of(odd_text, st.sampled_from(["profile", "tiny", "generate", "compare", "report", "--help",
                                                           "--version", "-h", "--n", "--out"])), max_size=4))
@SWEEP
def test_any_words_never_traceback(files, argv):
    if argv[:1] == ["generate"] or argv[:1] == ["report"]:
        argv = argv[:1] + ["--help"]  # their runs are swept above with well-formed option names
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr)


def drawable(value: str) -> bool:
    """Whether a count is refused or quick: not a valid count between 300 and 10**8 (valid, and only slow)."""
    try:
        count = int(value)
    except ValueError:
        return True
    return not 300 < count < 10**8


huge_int = st.sampled_from(["100000000", str(2**31), str(2**63 - 1), str(2**64), "9" * 30, "9" * 4000]).map(str)


@given(data=st.data())
@SWEEP
def test_interpolate_never_tracebacks(files, data):
    draw = data.draw
    spec = {"--seed": odd_int, "--label": odd_text, "--like": paths(files), "--to": st.one_of(odd_text, paths(files)),
            "--encoder": paths(files), "--device": st.sampled_from(["auto", "cpu", "cuda", ""])}
    checkpoint = draw(st.sampled_from([files / name for name in ("generator.pt", "label_generator.pt", "encoding_generator.pt")]))
    steps = draw(st.one_of(st.integers(1, 40).map(str), huge_int, odd_int.filter(drawable)))
    argv = ["interpolate", "--checkpoint", str(checkpoint), "--n-steps", steps, "--out", draw(paths(files, outputs=True))]
    argv += options(draw, files, spec)
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr)


@given(data=st.data())
@settings(SWEEP, max_examples=max(SWEEP.max_examples // 3, 1))
def test_export_and_check_folder_never_traceback(files, data):
    draw = data.draw
    if draw(st.booleans()):
        argv = ["export", "--checkpoint", draw(paths(files)), "--format", draw(st.sampled_from(["onnx", "torchscript", "web", "x"])),
                "--out", draw(st.one_of(odd_text, st.builds(lambda s: str(files / "out" / f"g{s}"),
                                                            st.sampled_from([".onnx", ".pt", "", ".onnx/"]))))]
    else:
        argv = ["check-folder", draw(paths(files))]
        argv += options(draw, files, {"--params": paths(files)})
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr)


@pytest.fixture(scope="module")
def projected(files):
    """An evaluator for the sweep's 28 px grey generators, and a latent file of the label generator."""
    from helpers import make_evaluator

    make_evaluator(files / "evaluator.pt")
    folder = files / "projected"
    status, _, stderr = run_cli(["project", str(files / "photo.png"), "--out", str(folder), "--steps", "2",
                                 "--checkpoint", str(files / "label_generator.pt"), "--evaluator", str(files / "evaluator.pt")])
    assert status == 0, stderr
    return folder / "photo.npz"


def quick_steps(value: str) -> bool:
    """Whether a --steps value is refused or quick: not a valid count above 3 (valid, and only slow)."""
    try:
        return int(value) <= 3
    except ValueError:
        return True


@given(data=st.data())
@settings(SWEEP, max_examples=max(SWEEP.max_examples // 3, 1))
def test_project_and_latent_files_never_traceback(files, projected, data):
    draw = data.draw
    checkpoint = str(files / draw(st.sampled_from(["generator.pt", "label_generator.pt", "encoding_generator.pt"])))
    models = st.one_of(st.sampled_from([str(files / "evaluator.pt"), checkpoint]), paths(files))
    latents = st.one_of(st.just(str(projected)), paths(files))
    if draw(st.booleans()):
        photos = draw(st.lists(st.one_of(st.just(str(files / "photo.png")), paths(files)), min_size=1, max_size=2))
        argv = ["project", *photos, "--out", draw(paths(files, outputs=True)), "--checkpoint", checkpoint,
                "--steps", draw(st.one_of(st.integers(1, 3).map(str), odd_int.filter(quick_steps)))]
        argv += options(draw, files, {"--evaluator": models, "--encoder": paths(files), "--seed": odd_int,
                                      "--device": st.sampled_from(["auto", "cpu", "cuda", ""])})
    else:
        command = draw(st.sampled_from(["generate", "interpolate"]))
        argv = [command, "--from", draw(latents), "--checkpoint", checkpoint, "--out", draw(paths(files, outputs=True))]
        spec = {"--label": odd_text, "--like": paths(files), "--seed": odd_int}
        spec.update({"--to": latents, "--n-steps": odd_int.filter(drawable)} if command == "interpolate"
                    else {"--n": odd_int.filter(drawable), "--truncation": st.sampled_from(["1", "0.5", "0", "x"])})
        argv += options(draw, files, spec)
    status, _, stderr = run_cli(argv)
    assert_result_or_one_error(argv, status, stderr)
