"""``fashiongen project``: a user's photo in the model, as the latent that reproduces it.

The projector of StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the
Image Quality of StyleGAN", section 5 and its ``projector.py``) and
Image2StyleGAN (Abdal et al. 2019, "Image2StyleGAN: How to Embed Images Into
the StyleGAN Latent Space?"), for FashionGen's generators of every
``model.condition``:

- the photo is converted exactly like the training images
  (:func:`fashiongen.generation.user_image`: any mode or channel count becomes
  the generator's grey or RGB, a bright background is inverted for
  Fashion-MNIST);
- the noise ``z`` is optimised with Adam from several starts at once, the best
  ``starts`` of ``pool`` seeded random draws, under StyleGAN2's schedule: the
  learning rate ramps up over the first 5 % of the steps and down (cosine)
  over the last 25 %, and noise added to ``z`` fades out (quadratically) over
  the first 75 %, so early steps explore. StyleGAN2 starts at the average
  ``w``; a DCGAN's ``z`` has no meaningful average, hence random starts;
- the loss is :class:`Ruler`'s distance, measured with the experiment's own
  evaluator (``models/evaluator.pt``) instead of a downloaded perceptual
  network (StyleGAN2 uses VGG16/LPIPS, Image2StyleGAN VGG16 + pixel MSE), plus
  a prior that keeps ``z`` on the Gaussian shell: ``w·(‖z‖²/D − 1)²``, where
  the generator's training noise lives (‖z‖² ≈ D within ±√(2D));
- the condition: a ``label`` model starts from the evaluator's top
  ``candidates`` classes for the photo (when the evaluator and the generator
  name the same classes; otherwise the classes whose random draws come
  closest), a ``cluster`` model from the clusters whose draws come closest,
  each optimised and the best kept; the cluster's "choice bits" (the last
  :data:`~fashiongen.models.conditioning.CHOICE_BITS` columns of ``z``) are
  then written so that the ordinary ``G(z)`` draws that cluster. An
  ``encoding`` model starts from the photo's own encoding (by the experiment's
  encoder) and tunes it with ``z``, under the same shell prior at its length
  √dim. A ``none`` model optimises ``z`` alone.

Every start is rendered at the end as ``fashiongen generate --from`` renders
it (one uint8 image from the saved float32 ``z``) and the one closest to the
photo is kept, so the distance reported is that of the saved reconstruction.

The latent file (``<stem>.npz``, ``numpy.savez``, uncompressed) is read by
``generate --from``, ``interpolate --from/--to`` and the web page:

- ``z``: float32 (z_dim,), the generator's whole noise row (a cluster model's
  choice bits included);
- ``cond``: only for generators given a condition: int64 () class index
  (label) or float32 (dim,) encoding (encoding);
- ``condition``: str, the generator's ``model.condition``;
- ``generator_sha256``: str, SHA-256 (hex) of the generator file's bytes;
- ``distance``: float64, :class:`Ruler`'s distance of the reconstruction;
- ``photo``: str, the photo's file name.

Same generator, evaluator, photo, settings and seed on the same machine and
thread count give the same latent.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fashiongen.analysis.interpolation import lerp, slerp
from fashiongen.atomic import atomic_write, staged_files
from fashiongen.config import condition_traits
from fashiongen.errors import CheckpointError, ConfigError, FashionGenError
from fashiongen.file_digest import file_sha256
from fashiongen.gan.artifact import LoadedGenerator, load_generator
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.generation import encode_user_image, user_image
from fashiongen.images import save_grid, to_model_range, to_uint8
from fashiongen.metrics.features import LoadedEvaluator, load_evaluator
from fashiongen.models.conditioning import CHOICE_BITS

LATENT_KEYS = ("z", "condition", "generator_sha256", "distance", "photo")


@dataclass(frozen=True)
class Settings:
    """How hard :func:`project_image` searches (defaults: ``fashiongen project``'s).

    ``steps`` Adam steps (>= 1) on ``starts`` starts per condition tried, the
    best of ``pool`` seeded draws each; ``candidates`` classes or clusters
    tried; ``lr`` the peak learning rate; ``noise`` the initial std of the
    noise added to ``z`` (fading out over the first 75 % of the steps);
    ``prior`` the weight of the shell prior; ``tune_encoding`` whether an
    encoding model's encoding is optimised too; ``seed`` any int in [0, 2**64).
    """

    steps: int = 300
    starts: int = 8
    pool: int = 64
    candidates: int = 3
    lr: float = 0.2
    noise: float = 0.05
    prior: float = 1.0
    tune_encoding: bool = True
    seed: int = 0


class Ruler:
    """The distance a projection minimises and reports, in the evaluator's feature space plus pixels.

    For images ``a``, ``b`` (float, B×C×H×W in [-1, 1]):
    ``d(a, b) = ‖f̂(a) − f̂(b)‖² + mean((a − b)²)``, where ``f̂`` is the
    evaluator's penultimate feature vector scaled to unit length (as LPIPS
    normalises its features) and the mean runs over the C·H·W pixel values.
    Both terms lie in [0, 4] (the feature term in [0, 2]: the features follow
    a ReLU); 0 means the same features and pixels. Two random Fashion-MNIST
    test images are about 2 apart (docs/results/projection.json).
    """

    def __init__(self, evaluator: LoadedEvaluator):
        self.evaluator = evaluator
        self.model = evaluator.model
        self.model.requires_grad_(False)

    def measure(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit features B×F, logits B×K) of float images B×C×H×W in [-1, 1]; differentiable."""
        features, logits = self.model.features_and_logits(images)
        return F.normalize(features.float(), dim=1), logits.float()

    def distance(self, images: torch.Tensor, target: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        """d(image, target) per row (float32, B) for images B×C×H×W and one target 1×C×H×W (its unit features 1×F)."""
        features, _ = self.measure(images)
        return (features - target_features).square().sum(1) + (images.float() - target).square().flatten(1).mean(1)

    @torch.inference_mode()
    def pairwise(self, a: torch.Tensor, b: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """d between every uint8 image of ``a`` (A×C×H×W) and of ``b`` (B×C×H×W): float64 A×B, on the CPU."""
        fa, pa = self._flat(a, batch_size)
        fb, pb = self._flat(b, batch_size)
        features = (fa.square().sum(1, keepdim=True) + fb.square().sum(1) - 2 * fa @ fb.T).clamp_min(0)
        pixels = (pa.square().sum(1, keepdim=True) + pb.square().sum(1) - 2 * pa @ pb.T).clamp_min(0) / pa.shape[1]
        return features + pixels

    def _flat(self, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        features = [self.measure(to_model_range(images[i:i + batch_size].to(device)))[0].cpu().double()
                    for i in range(0, len(images), batch_size)]
        return torch.cat(features), to_model_range(images).flatten(1).double()


def load_ruler(path: Path | str, loaded: LoadedGenerator, device: torch.device | str = "cpu") -> Ruler:
    """The :class:`Ruler` of the evaluator file ``path``, checked to measure ``loaded``'s images.

    Raises :class:`~fashiongen.errors.CheckpointError` when ``path`` is no
    evaluator file (another kind of model file included) or measures images of
    another channel count or size than the generator draws.
    """
    evaluator = load_evaluator(path, device)
    shape = (evaluator.config["channels"], evaluator.config["image_size"])
    if shape != (loaded.spec.channels, loaded.spec.image_size):
        raise CheckpointError(
            f"{path} measures {shape[0]}-channel {shape[1]} px images, but the generator draws "
            f"{loaded.spec.channels}-channel {loaded.spec.image_size} px ones; pass --evaluator with the evaluator "
            "of the generator's experiment (models/evaluator.pt)."
        )
    return Ruler(evaluator)


@dataclass
class Latent:
    """A projected photo: the generator's input that draws it, and how close that came (the file format above)."""

    z: torch.Tensor  # float32 (z_dim,)
    cond: torch.Tensor | None  # int64 () class, float32 (dim,) encoding, or None
    condition: str
    generator_sha256: str
    distance: float
    photo: str

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, cond)`` of one sample as ``generate`` feeds them: 1×z_dim float32 and 1 int64, 1×dim or 1×0."""
        cond = torch.empty(1, 0) if self.cond is None else self.cond.reshape(1, *self.cond.shape)
        return self.z.reshape(1, -1), cond


@dataclass
class Projection:
    """One photo's projection: its latent, the photo as the model sees it and the reconstruction (uint8 C×H×W)."""

    latent: Latent
    photo: torch.Tensor
    image: torch.Tensor
    label: str  # what condition was chosen, for people: a class name, "cluster 3", "its encoding, tuned" or ""


# --- the search -------------------------------------------------------------------------------------------------


class _Synthesis:
    """The part of a generator a projection differentiates: ``images(z, code)`` for inner noise ``z``
    (R × inner_dim: a cluster model's choice bits left out) and condition rows ``code`` (R × width: class
    embeddings, encodings, or R × 0)."""

    def __init__(self, loaded: LoadedGenerator):
        self.traits = condition_traits(loaded.spec.condition)
        self.module = loaded.module.requires_grad_(False)
        self.net = self.module.inner if self.traits.self_drawn else self.module  # a cluster model's inner network
        self.inner_dim = loaded.spec.z_dim - (CHOICE_BITS if self.traits.self_drawn else 0)

    def code(self, values: torch.Tensor) -> torch.Tensor:
        """Condition rows of class/cluster indices (embedded), encodings (as they are) or R × 0 rows."""
        return self.net.code(values) if self.traits.takes_code else values

    def images(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """float images R×C×H×W in [-1, 1]."""
        return self.net.from_code(z, code) if self.traits.takes_code else self.net(z, code)


def choice_slot(module: torch.nn.Module, cluster: int) -> int | None:
    """The choice-bit number ``b`` in [0, 2^16) in the middle of the slots that draw ``cluster`` from a
    :class:`~fashiongen.models.conditioning.ClusterPriorGenerator`'s noise, or None when no slot does (a
    cluster of share 0)."""
    slots = torch.arange(2 ** CHOICE_BITS, dtype=torch.float32, device=module.cluster_cdf.device)
    drawn = (((slots + 0.5) / float(2 ** CHOICE_BITS)).unsqueeze(1) > module.cluster_cdf[:-1]).sum(1)
    found = torch.nonzero(drawn == cluster).flatten()
    return None if len(found) == 0 else int(found[len(found) // 2])


def choice_bits(module: torch.nn.Module, cluster: int, magnitudes: torch.Tensor) -> torch.Tensor:
    """Noise columns (float32, CHOICE_BITS) with the absolute values ``magnitudes`` whose signs draw ``cluster``.

    Raises :class:`ValueError` for a cluster no noise draws.
    """
    slot = choice_slot(module, cluster)
    if slot is None:
        raise ValueError(f"no noise draws cluster {cluster} (its training share is 0)")
    bits = torch.tensor([(slot >> (CHOICE_BITS - 1 - i)) & 1 for i in range(CHOICE_BITS)], device=magnitudes.device)
    return torch.where(bits == 1, 1.0, -1.0) * magnitudes.abs().clamp_min(1e-3)


class _Search:
    """One photo's projection (see the module doc): candidates, starts, Adam, and the closest render."""

    def __init__(self, loaded: LoadedGenerator, ruler: Ruler, photo: torch.Tensor, settings: Settings,
                 encoding: torch.Tensor | None, device):
        self.loaded, self.ruler, self.settings, self.device = loaded, ruler, settings, device
        self.synth = _Synthesis(loaded)
        self.photo = photo
        self.target = to_model_range(photo[None].to(device))
        with torch.no_grad():
            self.target_features, self.logits = ruler.measure(self.target)
        self.pool = noise(settings.pool, loaded.spec.z_dim, settings.seed).to(device)
        self.encoding = encoding

    def distance(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.ruler.distance(self.synth.images(z, code), self.target, self.target_features)

    def run(self) -> tuple[Latent, torch.Tensor, str]:
        traits = self.synth.traits
        values, names = self.candidates()
        values, rows, names = self.starts(values, names)
        z0 = self.pool[rows, : self.synth.inner_dim]
        tune = traits.encoder and self.settings.tune_encoding
        z, codes = self.optimise(z0, self.synth.code(values).detach(), tune)
        if traits.self_drawn:  # the choice bits that make G(z) draw the start's cluster
            bits = torch.stack([choice_bits(self.synth.module, int(c), self.pool[r, -CHOICE_BITS:])
                                for c, r in zip(values.tolist(), rows.tolist())])
            z = torch.cat([z, bits], dim=1)
        conds = codes if traits.encoder else values if traits.asked_for else values.new_empty(len(z), 0)
        images = generate_uint8(self.synth.module, z, 1, self.device, conds)  # as `generate --from` draws each
        if traits.self_drawn and not torch.equal(self.synth.module.choose(z).cpu(), values.cpu()):
            raise AssertionError("the choice bits written into z draw another cluster")  # a bug, never the user's
        with torch.no_grad():
            d = self.ruler.distance(to_model_range(images.to(self.device)), self.target, self.target_features)
        best = int(torch.argmin(d))
        cond = conds[best].detach().cpu().clone() if traits.asked_for else None
        latent = Latent(z[best].detach().cpu().clone(), cond, self.loaded.spec.condition, "", float(d[best]), "")
        return latent, images[best], names[best]

    def candidates(self) -> tuple[torch.Tensor, list[str]]:
        """The conditions to try (R0 class/cluster indices, R0 × dim encodings or 1 × 0) and their names."""
        traits, device = self.synth.traits, self.device
        if traits.encoder:
            name = "its encoding, tuned" if self.settings.tune_encoding else "its encoding"
            return self.encoding.to(device).reshape(1, -1).float(), [name]
        if not traits.class_code:
            return torch.empty(1, 0, device=device), [""]
        count, classes = self.loaded.spec.num_classes, self.loaded.classes
        if traits.self_drawn:
            options = [c for c in range(count) if choice_slot(self.synth.module, c) is not None]
            names = {c: f"cluster {c}" for c in options}
        else:
            options = list(range(count))
            names = {c: classes[c] if c < len(classes) else f"class {c}" for c in options}
        keep = min(self.settings.candidates, len(options))
        if not traits.self_drawn and self.ruler.evaluator.classes == classes:
            ranked = torch.argsort(self.logits[0], descending=True, stable=True)[:keep].tolist()  # evaluator's top
        else:  # clusters, or classes the evaluator does not name: those whose random draws come closest
            inner = self.pool[:, : self.synth.inner_dim]
            with torch.no_grad():
                best = [self.distance(inner, self.synth.code(torch.full((len(inner),), c, device=device))).min().item()
                        for c in options]
            ranked = [options[i] for i in np.argsort(np.asarray(best), kind="stable")[:keep]]
        return torch.tensor(ranked, dtype=torch.long, device=device), [names[c] for c in ranked]

    def starts(self, values: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Each candidate's ``starts`` closest pool draws: (values R, pool rows int64 R, names R)."""
        inner = self.pool[:, : self.synth.inner_dim]
        chosen_values, rows, chosen_names = [], [], []
        with torch.no_grad():
            for value, name in zip(values, names):
                d = self.distance(inner, self.synth.code(value[None].expand(len(inner), *value.shape)))
                chosen = torch.argsort(d, stable=True)[: self.settings.starts]
                chosen_values.append(value[None].expand(len(chosen), *value.shape))
                rows.append(chosen)
                chosen_names += [name] * len(chosen)
        return torch.cat(chosen_values), torch.cat(rows), chosen_names

    def optimise(self, z0: torch.Tensor, code0: torch.Tensor, tune: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Adam on the starts' noise (and codes, when ``tune``) under StyleGAN2's schedules: (z R × D, codes R × W)."""
        settings = self.settings
        z = z0.clone().requires_grad_(True)
        code = code0.clone().requires_grad_(tune)
        optimiser = torch.optim.Adam([z, code] if tune else [z], lr=settings.lr, betas=(0.9, 0.999))
        rng = torch.Generator().manual_seed(int(np.random.SeedSequence([settings.seed, 1]).generate_state(1, np.uint64)[0]))
        dim, width = z.shape[1], max(code.shape[1], 1)
        for step in range(settings.steps):
            t = step / settings.steps
            ramp = min(1.0, (1.0 - t) / 0.25)
            lr = settings.lr * (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05)
            for group in optimiser.param_groups:
                group["lr"] = lr
            jitter = torch.randn(z.shape, generator=rng).to(z.device) * (settings.noise * max(0.0, 1.0 - t / 0.75) ** 2)
            with torch.enable_grad():
                loss = self.distance(z + jitter, code) + settings.prior * (z.square().sum(1) / dim - 1.0).square()
                if tune:
                    loss = loss + settings.prior * (code.square().sum(1) / width - 1.0).square()
                optimiser.zero_grad(set_to_none=True)
                loss.sum().backward()  # a sum: each start's gradient is its own, whatever the number of starts
            optimiser.step()
        return z.detach(), code.detach()


def project_image(
    loaded: LoadedGenerator, ruler: Ruler, photo: torch.Tensor, settings: Settings = Settings(),
    encoding: torch.Tensor | None = None, device: torch.device | str = "cpu",
) -> tuple[Latent, torch.Tensor, str]:
    """The latent whose image is closest to ``photo`` (uint8 C×H×W, the generator's channels and size).

    ``encoding`` (float32 1×dim, the photo's encoding by the experiment's
    encoder) is required for an encoding model and starts its search. Returns
    (the latent, with empty ``generator_sha256`` and ``photo``; its
    reconstruction, uint8 C×H×W on the CPU, exactly as ``generate --from``
    draws it; the condition chosen, in words).

    The generator's and the ruler's parameters are left not requiring
    gradients (only the latent is optimised). Raises
    :class:`~fashiongen.errors.ConfigError` for a photo of another shape than
    the generator draws, an encoding model without ``encoding``, or
    ``settings`` out of range.
    """
    spec = loaded.spec
    if tuple(photo.shape) != (spec.channels, spec.image_size, spec.image_size) or photo.dtype != torch.uint8:
        raise ConfigError(f"the photo is {photo.dtype} {tuple(photo.shape)}; the generator draws uint8 "
                          f"{(spec.channels, spec.image_size, spec.image_size)} (C×H×W) images.")
    if min(settings.steps, settings.starts, settings.pool, settings.candidates) < 1 or settings.starts > settings.pool:
        raise ConfigError(f"projection settings out of range: {settings} (steps, starts, pool, candidates >= 1, "
                          "starts <= pool).")
    if condition_traits(spec.condition).encoder and encoding is None:
        raise ConfigError("an encoding model's projection starts from the photo's encoding; none was given.")
    return _Search(loaded, ruler, photo, settings, encoding, device).run()


# --- the latent file -------------------------------------------------------------------------------------------


def save_latent(path: Path | str, latent: Latent) -> None:
    """Write ``latent`` in the format of the module doc (``numpy.savez``, uncompressed), atomically."""
    arrays = {
        "z": latent.z.detach().cpu().numpy().astype(np.float32).reshape(-1),
        "condition": np.str_(latent.condition),
        "generator_sha256": np.str_(latent.generator_sha256),
        "distance": np.float64(latent.distance),
        "photo": np.str_(latent.photo),
    }
    if latent.cond is not None:
        cond = latent.cond.detach().cpu()
        arrays["cond"] = (np.int64(cond.item()) if cond.dtype == torch.long
                          else cond.numpy().astype(np.float32).reshape(-1))
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def read_latent(path: Path | str) -> Latent:
    """The latent file ``path`` as it is (checked against no generator: see :func:`load_latent`).

    Raises :class:`~fashiongen.errors.FashionGenError` naming the file when it
    is missing, not an .npz file, or lacks a key of the format or has one of
    the wrong type.
    """
    path = Path(path)
    fix = "give a latent file written by `fashiongen project PHOTO --out DIR` (DIR/<photo>.npz)"
    if not path.is_file():
        raise FashionGenError(f"{path} does not exist; {fix}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FashionGenError(f"{path} is not a latent file ({type(exc).__name__}); {fix}.") from None
    missing = [key for key in LATENT_KEYS if key not in arrays]
    if missing:
        raise FashionGenError(f"{path} is not a latent file: it lacks {', '.join(missing)}; {fix}.")
    z, cond = arrays["z"], arrays.get("cond")
    texts = [arrays[key] for key in ("condition", "generator_sha256", "photo")]
    if (z.dtype != np.float32 or z.ndim != 1 or arrays["distance"].shape != () or any(t.dtype.kind != "U" for t in texts)
            or (cond is not None and not ((cond.dtype == np.int64 and cond.shape == ())
                                          or (cond.dtype == np.float32 and cond.ndim == 1)))):
        raise FashionGenError(f"{path}: a key has the wrong type or shape for a latent file; {fix}.")
    return Latent(torch.from_numpy(z.copy()), None if cond is None else torch.from_numpy(np.array(cond)),
                  str(texts[0]), str(texts[1]), float(arrays["distance"]), str(texts[2]))


def load_latent(path: Path | str, loaded: LoadedGenerator, checkpoint: Path | str, sha256: str | None = None) -> Latent:
    """:func:`read_latent`, checked to be a latent of the generator file ``checkpoint`` (``loaded``).

    ``sha256``: the checkpoint's :func:`file_sha256`, when already known.
    Raises :class:`~fashiongen.errors.FashionGenError` with one message naming
    every difference (generator file, condition kind, noise size, condition
    value) and the fix: the generator it was made with, or a new projection.
    """
    latent = read_latent(path)
    spec = loaded.spec
    sha256 = sha256 or file_sha256(checkpoint)
    problems = []
    if latent.generator_sha256 != sha256:
        problems.append(f"it was projected into another generator file (sha256 {latent.generator_sha256[:12]}…, "
                        f"{checkpoint} is {sha256[:12]}…)")
    if latent.condition != spec.condition:
        problems.append(f"its condition is {latent.condition!r}, the generator's {spec.condition!r}")
    if latent.z.shape != (spec.z_dim,):
        problems.append(f"its z has {latent.z.numel()} values, the generator takes {spec.z_dim}")
    traits = condition_traits(spec.condition)
    problems += [] if latent.condition != spec.condition else _cond_problems(latent.cond, traits, spec)
    if problems:
        raise FashionGenError(
            f"{path} does not fit {checkpoint}: {'; '.join(problems)}. Pass the generator it was made with "
            f"(--checkpoint), or project the photo ({latent.photo or 'PHOTO'}) into this one: "
            f"fashiongen project PHOTO --checkpoint {checkpoint} --out DIR."
        )
    return latent


def _cond_problems(cond: torch.Tensor | None, traits, spec) -> list[str]:
    if not traits.asked_for:
        return [] if cond is None else ["it holds a condition (cond), which this generator does not take"]
    if cond is None:
        return ["it lacks the condition (cond) this generator takes"]
    if traits.encoder:
        return [] if cond.dtype == torch.float32 and cond.shape == (spec.cond_dim,) else [
            f"its cond is {cond.dtype} {tuple(cond.shape)}, the generator takes float32 ({spec.cond_dim},) encodings"]
    if cond.dtype != torch.long or cond.shape != () or not 0 <= int(cond) < spec.num_classes:
        return [(f"its cond is {cond.dtype} {tuple(cond.shape)} {cond.tolist()}, the generator takes one class "
                 f"index (int64) in 0..{spec.num_classes - 1}")]
    return []


# --- drawing from latents ---------------------------------------------------------------------------------------


@torch.inference_mode()
def latent_walk(loaded: LoadedGenerator, a: Latent, b: Latent, steps: int, device="cpu") -> torch.Tensor:
    """``interpolate --from A --to B``: uint8 frames (steps × C × H × W, CPU) from latent ``a``'s image to ``b``'s.

    The noise slerps (:func:`~fashiongen.analysis.interpolation.slerp`), the
    condition code lerps: a label model's class embedding, an encoding model's
    encoding, a cluster model's cluster embedding (its inner noise slerps and
    its choice bits are left out, so the cluster changes gradually rather than
    at one frame). Each frame is drawn alone, so the first and the last are bit
    for bit the two latents' ``generate --from`` images. Raises
    :class:`~fashiongen.errors.ConfigError` for fewer than 2 steps.
    """
    if steps < 2:
        raise ConfigError(f"--n-steps {steps}: a walk needs at least 2 steps (its two ends).")
    synth = _Synthesis(loaded)
    ends = []
    for latent in (a, b):
        z, cond = (t.to(device) for t in latent.inputs())
        if synth.traits.self_drawn:
            z, cond = z[:, : synth.inner_dim], synth.module.choose(z)
        ends.append((z[0], synth.code(cond)[0]))
    z = slerp(ends[0][0], ends[1][0], steps)
    z[0], z[-1] = ends[0][0], ends[1][0]
    codes = lerp(ends[0][1], ends[1][1], steps)
    frames = [synth.images(z[i:i + 1], codes[i:i + 1]) for i in range(steps)]
    return torch.cat([to_uint8(frame).cpu() for frame in frames])


# --- fashiongen project ----------------------------------------------------------------------------------------


def output_paths(photos: list[Path], out: Path) -> list[dict[str, Path]]:
    """Per photo, its files in ``out``: ``image`` (<stem>.png), ``compare`` (<stem>-compare.png), ``latent``
    (<stem>.npz).

    Raises :class:`~fashiongen.errors.ConfigError` when ``out`` is a file, two
    photos share a stem (case ignored, as some file systems do), or a file
    would overwrite one of the photos.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (it is created if missing).")
    stems: dict[str, Path] = {}
    for photo in photos:
        other = stems.setdefault(photo.stem.casefold(), photo)
        if other != photo:
            raise ConfigError(f"{other} and {photo} would write the same files in {out} (<stem>.png, <stem>.npz); "
                              "rename one, or project them into different --out folders.")
    paths = [{"image": out / f"{p.stem}.png", "compare": out / f"{p.stem}-compare.png", "latent": out / f"{p.stem}.npz"}
             for p in photos]
    inputs = {p.resolve() for p in photos}
    for files in paths:
        clash = [f for f in files.values() if f.resolve() in inputs]
        if clash:
            raise ConfigError(f"{clash[0]} is one of the photos and would be overwritten by its reconstruction; "
                              "pick another --out folder.")
    return paths


def save_png(path: Path | str, image: torch.Tensor) -> None:
    """Write one uint8 image (C×H×W, C = 1 or 3) as a PNG of exactly those pixels (grey or RGB), atomically."""
    array = image.detach().cpu().numpy()
    with atomic_write(path) as handle:
        Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)).save(handle, format="PNG")


def project_photos(
    photos: list[Path], out: Path, checkpoint: Path, evaluator: Path, encoder: Path, settings: Settings = Settings(),
    device: torch.device | str = "cpu",
) -> Iterator[tuple[Path, Projection, dict[str, Path]]]:
    """``fashiongen project``: project each photo and write its files (:func:`output_paths`); yields
    (photo, projection, files) as each is done.

    Every photo is read and converted before any work starts, so a bad one
    fails at once. Raises :class:`~fashiongen.errors.FashionGenError`
    subclasses: a model file of another kind or a missing one
    (``CheckpointError``), an evaluator for other images, an encoder of
    another experiment (encoding models), a photo that is not a readable image
    (``DataError``), or clashing output names (``ConfigError``).
    """
    files = output_paths(photos, out)
    loaded = load_generator(checkpoint, device)
    ruler = load_ruler(evaluator, loaded, device)
    sha256 = file_sha256(checkpoint)
    converted = [torch.from_numpy(np.array(user_image(loaded, photo))) for photo in photos]  # a writable copy
    encoder_used = condition_traits(loaded.spec.condition).encoder
    encodings = [encode_user_image(loaded, photo, encoder, device) if encoder_used else None for photo in photos]
    out.mkdir(parents=True, exist_ok=True)
    for photo, image, encoding, paths in zip(photos, converted, encodings, files):
        latent, reconstruction, label = project_image(loaded, ruler, image, settings, encoding, device)
        latent.generator_sha256, latent.photo = sha256, photo.name
        with staged_files(out) as staging:  # the three files of a photo change together, or none does
            save_png(staging / paths["image"].name, reconstruction)
            save_grid(staging / paths["compare"].name, torch.stack([image, reconstruction]), nrow=2)
            save_latent(staging / paths["latent"].name, latent)
        yield photo, Projection(latent, image, reconstruction, label), paths
