"""The ``fashiongen`` command line.

Only argparse is imported at start-up; each subcommand imports what it needs
when it runs, so ``fashiongen --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashiongen import __version__
from fashiongen.errors import FashionGenError

GRID_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
RAW_SUFFIXES = {".npz"}
SEED_MAX = 2**64 - 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fashiongen",
        description="FashionGen: reproducible GANs for fashion images. "
        "The pipeline itself runs with `dvc repro`; these commands use its outputs.",
    )
    parser.add_argument("--version", action="version", version=f"fashiongen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate",
        help="draw images from a trained generator",
        description="Draw images from a trained generator: a PNG/JPEG/WebP grid, or raw uint8 "
        "images (N×C×H×W, key 'images') in an .npz file.",
    )
    generate.add_argument("--checkpoint", type=Path, default=Path("models/generator.pt"))
    generate.add_argument("--n", type=_positive_int, default=None, help="number of images (default 64; 1 with --from)")
    generate.add_argument("--out", type=Path, required=True, help="grid.png | samples.npz")
    generate.add_argument("--seed", type=_seed, default=None,
                          help="noise seed, 0 to 2**64-1 (default 0): image i depends on the seed and i only, whatever --n")
    generate.add_argument("--nrow", type=_positive_int, default=None, help="images per grid row")
    _add_condition_args(generate, "class index or name, e.g. 7 or sneaker (model.condition: label)",
                        "variations of this photo, any size/format (model.condition: encoding)")
    generate.add_argument("--truncation", type=_psi, default=1.0, metavar="PSI",
                          help="truncated-normal noise keeping this share of its mass, in (0, 1]: lower = less "
                          "variety, more typical images (default 1: none)")
    generate.add_argument("--from", dest="latent", type=Path, metavar="LATENT",
                          help="draw the image of a latent file from `fashiongen project` (its z and condition; "
                          "--label may change a label model's class)")
    generate.set_defaults(run=_run_generate, compute=True)
    _add_inspect_commands(commands)

    compare = commands.add_parser(
        "compare",
        help="gate: fail when a metric got worse than a baseline beyond tolerance",
        description="Compare two metrics files (results/evaluate/metrics.json). Prints a Markdown table and "
        "exits 1 when a gated metric moved the wrong way beyond its tolerance, or when the files were measured "
        "with different rulers (evaluator or N).",
    )
    compare.add_argument("baseline", type=Path)
    compare.add_argument("current", type=Path)
    compare.add_argument("--tolerances", type=Path, help="YAML: {metric: {better: lower|higher, absolute, relative}}")
    compare.add_argument("--allow-ruler-change", action="store_true", help="warn instead of failing on different rulers")
    compare.set_defaults(run=_run_compare)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report of the workspace or of experiments",
        description="One HTML page (images embedded): params, metrics beside the real-data floor, sample grids "
        "through training, loss and FID curves; several --exp give a side-by-side table.",
    )
    report.add_argument("--exp", action="append", default=[], metavar="NAME", help="a DVC experiment (repeatable)")
    report.add_argument("--out", type=Path, default=Path("report.html"))
    report.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: here)")
    report.add_argument("--web", type=Path, default=None, metavar="DIR",
                        help="a web export to link to (fashiongen export --format web; default: REPO/web)")
    report.set_defaults(run=_run_report, compute=True)

    profile = commands.add_parser(
        "profile",
        help="print a params profile as `dvc exp run` arguments",
        description="Print the overrides of a named profile as `-S key=value` arguments, e.g. "
        "`dvc exp run $(fashiongen profile tiny)`.",
    )
    profile.add_argument("name", help="profile name, e.g. tiny")
    profile.set_defaults(run=_run_profile)
    _add_check_folder(commands)
    _add_project(commands)
    return parser


def _add_inspect_commands(commands) -> None:
    """`interpolate` and `export` (issue 18)."""
    walk = commands.add_parser(
        "interpolate",
        help="a walk between two samples, as a strip or a GIF",
        description="Spherical interpolation between two noise vectors (seed's first two); at fixed noise, "
        "between two classes (--label A --to B, label models) or two photos (--like a.jpg --to b.jpg, encoding models).",
    )
    walk.add_argument("--checkpoint", type=Path, default=Path("models/generator.pt"))
    walk.add_argument("--n-steps", type=_positive_int, default=8, help="images in the walk, ends included (default 8)")
    walk.add_argument("--out", type=Path, required=True, help="walk.png (one strip) | walk.gif (animation)")
    walk.add_argument("--seed", type=_seed, default=None, help="noise seed, 0 to 2**64-1 (default 0)")
    _add_condition_args(walk, "class to start from (label models)", "photo to start from (encoding models)")
    walk.add_argument("--to", metavar="CLASS|IMAGE|LATENT",
                      help="class or photo to walk to, at fixed noise; with --from, a latent file to walk to")
    walk.add_argument("--from", dest="latent", type=Path, metavar="LATENT",
                      help="walk from this latent file of `fashiongen project` to the one of --to")
    walk.set_defaults(run=_run_interpolate, compute=True)

    export = commands.add_parser(
        "export",
        help="write the generator as ONNX or TorchScript (+ a JSON of its inputs), or as a web page",
        description="Export the generator with a dynamic batch size (inputs z and, for conditional models, cond; "
        "output images in [-1, 1]) and PATH.json describing them. --format web writes a folder with a page that "
        "runs the generator in the browser (onnxruntime-web), offline, from file:// or any static server.",
    )
    export.add_argument("--checkpoint", type=Path, default=Path("models/generator.pt"))
    export.add_argument("--format", choices=("onnx", "torchscript", "web"), required=True)
    export.add_argument("--out", type=Path, required=True, help="e.g. generator.onnx, generator.pt, or a folder for web")
    web = export.add_argument_group("--format web")
    web.add_argument("--onnxruntime-web", type=Path, metavar="PATH",
                     help="onnxruntime-web's npm .tgz or unpacked folder, where npm cannot be reached "
                     "(default: the cache, else a download from the npm registry)")
    web.add_argument("--encodings", type=Path, default=Path("data/encodings"),
                     help="encoding models: the encodings of the example photos the page offers")
    web.add_argument("--prepared", type=Path, default=Path("data/prepared"),
                     help="encoding models: the prepared images those encodings belong to")
    export.set_defaults(run=_run_export, compute=True)


def _add_condition_args(parser: argparse.ArgumentParser, label_help: str, like_help: str) -> None:
    """--device, --label, --like and --encoder: the device and the condition a generator is given."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--label", help=label_help)
    parser.add_argument("--like", type=Path, metavar="IMAGE", help=like_help)
    parser.add_argument("--encoder", type=Path, default=Path("models/encoder.pt"),
                        help="the encoder of the generator's experiment (with --like)")


def _psi(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1] (1 = no truncation), got {value}")
    return value


def _run_interpolate(args: argparse.Namespace) -> None:
    suffix = args.out.suffix.lower()
    if suffix not in GRID_SUFFIXES | {".gif"}:
        raise FashionGenError(f"--out {args.out}: unknown extension {suffix!r}; use .gif or one of {', '.join(sorted(GRID_SUFFIXES))}.")
    _check_writable(args.out)
    from fashiongen.analysis.interpolation import save_gif, walk
    from fashiongen.device import resolve_device
    from fashiongen.gan.artifact import load_generator
    from fashiongen.generation import check_memory, generate_memory_bytes
    from fashiongen.images import check_grid_size, save_grid

    device = resolve_device(args.device)
    loaded = load_generator(args.checkpoint, device)
    ends = _walk_latents(args, loaded)
    size = loaded.spec.image_size  # a strip is one row of --n-steps images; a GIF holds them all as frames
    strip = None if suffix == ".gif" else check_grid_size(args.out, args.n_steps, size, size, args.n_steps,
                                                          fix="walk in fewer steps (--n-steps), or write a .gif")
    check_memory(generate_memory_bytes(args.n_steps, loaded.spec.z_dim, loaded.spec.channels, size, strip),
                 f"--n-steps {args.n_steps} frames to {args.out}", "walk in fewer steps (--n-steps)")
    if ends is not None:
        from fashiongen.projection import latent_walk

        frames = latent_walk(loaded, *ends, args.n_steps, device)
    else:
        seed = 0 if args.seed is None else args.seed
        frames = walk(loaded, args.n_steps, seed, args.label, args.like, args.to, args.encoder, device)
    save_gif(args.out, frames) if suffix == ".gif" else save_grid(args.out, frames, nrow=len(frames))
    print(f"wrote a {len(frames)}-step walk to {args.out}")


def _run_export(args: argparse.Namespace) -> None:
    if args.format == "web":
        return _run_web_export(args)
    _check_writable(args.out)
    from fashiongen.export import export_generator
    from fashiongen.gan.artifact import load_generator

    model, description = export_generator(load_generator(args.checkpoint), args.format, args.out)
    print(f"wrote {model} and {description}")


def _run_web_export(args: argparse.Namespace) -> None:
    from fashiongen.gan.artifact import load_generator
    from fashiongen.web_export import export_web
    from fashiongen.web_folder import check_target
    from fashiongen.web_runtime import runtime_folder

    check_target(args.out)
    loaded = load_generator(args.checkpoint)
    page = export_web(loaded, args.checkpoint, args.out, runtime_folder(args.onnxruntime_web),
                      encodings=args.encodings, prepared=args.prepared)
    print(f"wrote {page}: open it in a browser (it needs no network), or serve {args.out} from any static server")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # also for more digits than Python converts (sys.get_int_max_str_digits)
        shown = text if len(text) <= 40 else f"{text[:37]}..."
        raise argparse.ArgumentTypeError(f"expected a whole number, got {shown!r}") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**64-1 = {SEED_MAX}, got {value}")
    return value


def _run_generate(args: argparse.Namespace) -> None:
    suffix = args.out.suffix.lower()
    if suffix not in GRID_SUFFIXES | RAW_SUFFIXES:
        raise FashionGenError(
            f"--out {args.out}: unknown extension {suffix!r}; use one of "
            f"{', '.join(sorted(GRID_SUFFIXES | RAW_SUFFIXES))}."
        )
    from fashiongen.atomic import save_npz
    from fashiongen.device import resolve_device
    from fashiongen.gan.artifact import load_generator
    from fashiongen.analysis.truncation import truncated_noise
    from fashiongen.gan.sampling import generate_uint8
    from fashiongen.generation import check_memory, generate_memory_bytes, generation_conditions
    from fashiongen.images import check_grid_size, save_grid

    _check_writable(args.out)
    args.n = args.n or (1 if args.latent else 64)
    device = resolve_device(args.device)
    loaded = load_generator(args.checkpoint, device)
    spec = loaded.spec
    grid = None if suffix in RAW_SUFFIXES else check_grid_size(args.out, args.n, spec.image_size, spec.image_size, args.nrow)
    check_memory(generate_memory_bytes(args.n, spec.z_dim, spec.channels, spec.image_size, grid),
                 f"--n {args.n} images to {args.out}", "draw fewer images (--n)")
    if args.latent is not None:
        z, cond = _latent_inputs(args, loaded)
    else:
        cond = generation_conditions(loaded, args.n, args.label, args.like, args.encoder, device)
        z = truncated_noise(args.n, loaded.spec.z_dim, 0 if args.seed is None else args.seed, args.truncation)
    images = generate_uint8(loaded.module, z, 1000, device, cond)
    if suffix in RAW_SUFFIXES:
        save_npz(args.out, images=images.numpy())
    else:
        save_grid(args.out, images, nrow=args.nrow)
    print(f"wrote {args.n} images to {args.out}")


def _check_writable(out: Path) -> None:
    """Refuse, before any work, an --out that cannot be written (a folder, under a file, a read-only folder)."""
    import os

    if out.is_dir():
        raise FashionGenError(f"--out {out} is a folder; give a file name such as {out / 'grid.png'}.")
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not parent.is_dir():
        raise FashionGenError(f"--out {out}: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FashionGenError(f"--out {out}: the folder {parent} is not writable.")


def _run_compare(args: argparse.Namespace) -> int:
    from fashiongen.compare import compare_files, to_markdown

    comparison = compare_files(args.baseline, args.current, args.tolerances)
    print(to_markdown(comparison, args.allow_ruler_change))
    return 0 if comparison.passed(args.allow_ruler_change) else 1


def _run_report(args: argparse.Namespace) -> None:
    from fashiongen.report import how_to_get, write_report

    runs = write_report(args.repo, args.exp, args.out, args.web)
    print(f"wrote {args.out}")
    for run in runs:
        if run.missing:
            print(f"note: {how_to_get(run)}", file=sys.stderr)


def _run_profile(args: argparse.Namespace) -> None:
    import shlex

    from fashiongen.profiles import load_profile, set_args

    print(shlex.join(set_args(load_profile(args.name))))


def _print_paths_as_given() -> None:
    """Print a path the way it came: bytes that are not UTF-8 (surrogate escapes in argv) go out as the same bytes."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")


# --- check-folder: what the pipeline would make of a photo folder (fashiongen/data/folder_check.py) ---


def _add_check_folder(commands) -> None:
    check = commands.add_parser(
        "check-folder",
        help="report what download/preprocess would make of a photo folder; writes nothing",
        description="Scan and decode a photo folder as the download and preprocess stages would, writing nothing. "
        "Prints per class the image count, size range and modes, every file that would be skipped or ignored "
        "with the reason, and warnings. Exits 0 if the folder would train, 2 otherwise.",
    )
    check.add_argument("folder", type=Path, metavar="PATH")
    check.add_argument("--params", type=Path, default=None,
                       help="params whose data.*, model.condition and evaluate.num_samples apply "
                       "(default: ./params.yaml when there is one, else the defaults)")
    check.set_defaults(run=_run_check_folder)


def _run_check_folder(args: argparse.Namespace) -> int:
    from fashiongen.config import DEFAULT_PARAMS_PATH, Params, load_params
    from fashiongen.data.folder_check import check_folder, print_report
    from fashiongen.errors import ConfigError

    if args.params is not None and not args.params.is_file():
        raise ConfigError(f"--params {args.params} is not a file; give the path of a params.yaml.")
    path = args.params or DEFAULT_PARAMS_PATH
    params = load_params(path) if path.is_file() else Params()
    report = check_folder(args.folder, params)
    print_report(args.folder, report)
    return 0 if report.would_train else 2


# --- project: your own photo in the model (fashiongen/projection.py), and the latents it writes ---


def _add_project(commands) -> None:
    project = commands.add_parser(
        "project",
        help="find the input that makes the generator draw your photo (reconstruction, latent .npz, distance)",
        description="Project each PHOTO into the generator, as StyleGAN2's projector does: Adam on the noise from "
        "several starts and, for label/cluster/encoding models, the class, cluster or encoding that fits best, "
        "measured in the evaluator's feature space plus pixels. Writes DIR/<stem>.png (the reconstruction), "
        "DIR/<stem>-compare.png (photo | reconstruction) and DIR/<stem>.npz (the latent, for `generate --from` and "
        "`interpolate --from A --to B`), and prints the distance reached (0 = identical; two random "
        "Fashion-MNIST images are about 2 apart).",
    )
    project.add_argument("photos", type=Path, nargs="+", metavar="PHOTO", help="any size/format; converted like "
                         "the training images")
    project.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the files (created)")
    project.add_argument("--checkpoint", type=Path, default=Path("models/generator.pt"))
    project.add_argument("--evaluator", type=Path, default=Path("models/evaluator.pt"),
                         help="the experiment's evaluator, whose features measure the distance")
    project.add_argument("--encoder", type=Path, default=Path("models/encoder.pt"),
                         help="the experiment's encoder (model.condition: encoding)")
    project.add_argument("--steps", type=_positive_int, default=None,
                         help="Adam steps per photo (default 300: fashiongen.projection.Settings)")
    project.add_argument("--seed", type=_seed, default=0, help="seed of the starts and of the optimiser's noise")
    project.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    project.set_defaults(run=_run_project, compute=True)


def _run_project(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from fashiongen.device import resolve_device
    from fashiongen.projection import Settings, project_photos

    settings = replace(Settings(), seed=args.seed, **({} if args.steps is None else {"steps": args.steps}))
    device = resolve_device(args.device)
    for photo, result, files in project_photos(args.photos, args.out, args.checkpoint, args.evaluator, args.encoder,
                                               settings, device):
        chosen = f" ({result.label})" if result.label else ""
        print(f"{photo}: distance {result.latent.distance:.4f}{chosen} -> {files['image']}, {files['latent']}")


def _latent_inputs(args: argparse.Namespace, loaded):
    """``generate --from``: z (1×z_dim) and the condition of the latent file (a label model's class: --label's)."""
    from fashiongen.errors import ConfigError
    from fashiongen.generation import generation_conditions
    from fashiongen.projection import load_latent

    if args.n != 1:
        raise ConfigError(f"--from draws the one image of a latent, not --n {args.n}; drop --n, or walk from it to "
                          "another latent: fashiongen interpolate --from A.npz --to B.npz.")
    given = [flag for flag, value in (("--seed", args.seed), ("--like", args.like)) if value is not None]
    given += ["--truncation"] if args.truncation != 1.0 else []
    if given:
        raise ConfigError(f"--from gives the noise and the condition; drop {' and '.join(given)}.")
    z, cond = load_latent(args.latent, loaded, args.checkpoint).inputs()
    if args.label is not None:  # the photo's noise in another class; refused for a model without classes
        cond = generation_conditions(loaded, 1, args.label, None, args.encoder, "cpu")
    return z, cond


def _walk_latents(args: argparse.Namespace, loaded):
    """``interpolate --from A.npz --to B.npz``: the two latents, checked against the generator; None without --from."""
    from fashiongen.errors import ConfigError

    if args.latent is None:
        if args.to is not None and args.to.lower().endswith(".npz"):
            raise ConfigError(f"--to {args.to} is a latent file: walk from another one with --from A.npz.")
        return None
    if args.to is None:
        raise ConfigError("--from LATENT walks to another latent: add --to B.npz (both from `fashiongen project`).")
    given = [flag for flag, value in (("--seed", args.seed), ("--label", args.label), ("--like", args.like))
             if value is not None]
    if given:
        raise ConfigError("--from/--to walk between two latent files, which give the noise and the conditions; "
                          f"drop {' and '.join(given)}.")
    from fashiongen.file_digest import file_sha256
    from fashiongen.projection import load_latent

    sha256 = file_sha256(args.checkpoint)
    return tuple(load_latent(path, loaded, args.checkpoint, sha256) for path in (args.latent, Path(args.to)))


def main(argv: list[str] | None = None) -> int:
    _print_paths_as_given()
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "compute", False):  # before torch is imported (fashiongen.runtime)
            from fashiongen.runtime import configure_compute

            configure_compute()
        status = args.run(args)
    except FashionGenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the system refused a path the user gave (name too long, permission, a loop, ...)
        if exc.filename is None:
            raise
        print(f"error: {exc.filename}: {exc.strerror or type(exc).__name__}.", file=sys.stderr)
        return FashionGenError.exit_code
    return status or 0
