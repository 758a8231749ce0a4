"""The typed configuration behind params.yaml.

Every stage validates the *whole* file before doing any work, so a typo such as
``train.epoch`` or a value out of range fails the first stage that runs, in
about a second, with a message that names the key and what is allowed. The
models forbid unknown keys and are strict about types: ``epochs: "10"`` or
``epochs: 2.5`` is an error, not a silent coercion.

params.yaml is parsed as YAML 1.2 (ruamel, the parser DVC itself uses), so a
value such as ``2e-4`` means the same number to FashionGen, to ``dvc params
diff`` and to ``dvc exp run -S``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fashiongen.errors import ConfigError

DEFAULT_PARAMS_PATH = Path("params.yaml")
FASHION_MNIST_SIZE = 28
FOLDER_SIZES = (32, 64, 128)
DEFAULT_FOLDER_SIZE = 64
# train.reg_chunk auto: pixels (images × H × W) per R1/R2 pass; its double backward through D at 128 px and
# batch 128 took the train stage to 3.1 GB (docs/benchmarks.md, issue 22)
REG_PIXELS_PER_PASS = 2**19
# Option values: each must equal its registry's names (tests/test_config.py checks every one).
AugmentName = Literal["color", "translation", "cutout"]  # fashiongen.gan.augment.AUGMENTS


class _Section(BaseModel):
    """Base of every section: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataConfig(_Section):
    """Where the images come from and how much of them to use."""

    source: Literal["fashion-mnist", "folder"] = Field(
        "fashion-mnist", description="fashion-mnist, or folder: any folder of photos (data.folder)."
    )
    folder: str = Field(
        "data/photos", min_length=1,
        description="data.source folder: a folder of JPEG/PNG/WebP/GIF/BMP/TIFF images, nested; subfolders name classes. "
        "A dependency of the download stage whatever the source, so it must exist.",
    )
    image_size: Optional[int] = Field(
        None, description="Training size in px; null = the source's own (28 for fashion-mnist, 64 for folders)."
    )
    channels: Optional[Literal[1, 3]] = Field(
        None, description="1 (grey) or 3 (RGB); null = the source's own (1 for fashion-mnist, 3 for folders)."
    )
    test_fraction: float = Field(
        0.1, gt=0, lt=1, description="data.source folder: share of images held out as the test split."
    )
    workers: Optional[int] = Field(
        None, ge=1, le=256, description="Processes that decode a folder's images; null = one per CPU core."
    )
    alpha_background: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=lambda: [255, 255, 255], min_length=3, max_length=3,
        description="RGB colour (0..255 each) that transparent pixels of a folder's images and of "
        "`generate --like` photos are composited over; white, what product cut-outs are shown on.",
    )
    local_dir: Optional[str] = Field(
        "/usr/share/datasets/fashion-mnist",
        description="Folder holding the four IDX files (.gz or not); tried before the mirrors.",
    )
    mirrors: list[str] = Field(
        default_factory=lambda: [
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ],
        description="Base URLs tried in order after local_dir.",
    )
    download_timeout_s: float = Field(60.0, gt=0, le=3600)
    preload_max_gb: float = Field(
        2.0, ge=0, le=1024,
        description="GiB of prepared images a stage may hold in (device) memory; a split beyond what is left is "
        "read batch by batch from its file (fashiongen/data/batches.py). Changes speed and memory, never a result.",
    )
    subset: Optional[int] = Field(
        None, ge=50,
        description="First N images per split, class-balanced as far as the classes allow; null = all. "
        "At least 50: the evaluation needs 100 real images (fashiongen/real_set.py).",
    )

    @model_validator(mode="after")
    def _source_settings_agree(self) -> "DataConfig":
        if self.source == "fashion-mnist":
            if self.image_size not in (None, FASHION_MNIST_SIZE):
                raise ValueError(
                    f"data.image_size={self.image_size}: Fashion-MNIST is {FASHION_MNIST_SIZE} px; "
                    "leave it null (or use data.source: folder for other sizes)"
                )
            if self.channels not in (None, 1):
                raise ValueError("data.channels=3: Fashion-MNIST is grey; leave it null or set 1")
        elif self.image_size not in (None, *FOLDER_SIZES):
            raise ValueError(f"data.image_size={self.image_size} is not supported for folders; use one of {FOLDER_SIZES}")
        return self

    def resolved_image_size(self) -> int:
        if self.image_size is not None:
            return self.image_size
        return FASHION_MNIST_SIZE if self.source == "fashion-mnist" else DEFAULT_FOLDER_SIZE

    def resolved_channels(self) -> int:
        if self.channels is not None:
            return self.channels
        return 1 if self.source == "fashion-mnist" else 3


class EvaluatorConfig(_Section):
    """The fixed classifier that measures every experiment (not an experiment knob)."""

    epochs: int = Field(6, ge=1, le=1000)
    batch_size: int = Field(256, ge=8, le=65536)
    lr: float = Field(3e-3, gt=0, le=1)
    width: int = Field(32, ge=4, le=512)
    feature_dim: int = Field(128, ge=8, le=4096)
    steps_per_epoch: Optional[int] = Field(
        None, ge=1, description="At most this many steps per epoch (a fresh random draw of the split each epoch); "
        "null = the whole split. Bounds the time of an epoch on a big folder.",
    )
    seed: int = Field(0, ge=0, lt=2**32)


class EncoderConfig(_Section):
    """The ResNet whose encodings condition the generator (used when model.condition is encoding)."""

    arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet18"
    dim: int = Field(64, ge=2, le=2048, description="Size of the encoding.")
    weights: Literal["fashion", "imagenet"] = Field(
        "fashion", description="fashion: trained on the training split; imagenet: torchvision's weights, fine-tuned."
    )
    keep_maxpool: bool = Field(True, description="false drops the stem's max-pool (4x detail, 3.6x FLOPs).")
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(256, ge=8, le=65536)
    lr: float = Field(2e-3, gt=0, le=1)
    steps_per_epoch: Optional[int] = Field(
        None, ge=1, description="At most this many steps per epoch (a fresh random draw of the split each epoch); "
        "null = the whole split. Bounds the time of an epoch on a big folder.",
    )
    seed: int = Field(0, ge=0, lt=2**32)


# --- What a condition name means (model.condition) ---------------------------------------------
# The one owner of what each choice is, needs and what ``auto`` becomes. Every layer reads its part from
# here instead of comparing names: the download stage's checks and check-folder (labels), the encoder
# stages (encoder), fashiongen.models.conditioning (how the networks take the code), fashiongen.gan.conditions
# (the values in training), fashiongen.generation and fashiongen.export (what a caller may ask for).


@dataclass(frozen=True)
class ConditionTraits:
    """What one choice of ``model.condition`` is and needs."""

    labels: bool  # the prepared data must have class labels
    encoder: bool  # the code is a ResNet encoding of a real image: the train_encoder and encode stages work for it
    class_code: bool  # the code is a class (or cluster) index, embedded in model.embed_dim columns
    self_drawn: bool = False  # sampling draws the code from the noise itself: a caller asks for nothing

    @property
    def takes_code(self) -> bool:
        """The networks take a code in training (an embedded class, or an encoding)."""
        return self.class_code or self.encoder

    @property
    def asked_for(self) -> bool:
        """Samples follow a condition the caller gives (``--label``, ``--like``, an exported ``cond`` input)."""
        return self.takes_code and not self.self_drawn


CONDITIONS: dict[str, ConditionTraits] = {
    "none": ConditionTraits(labels=False, encoder=False, class_code=False),
    "label": ConditionTraits(labels=True, encoder=False, class_code=True),
    "encoding": ConditionTraits(labels=True, encoder=True, class_code=False),  # the encoder learns by classifying
    # pixel k-means clusters stand in for labels in training; the generator draws its cluster when sampled
    "cluster": ConditionTraits(labels=False, encoder=False, class_code=True, self_drawn=True),
}
AUTO_CONDITION = "auto"


def trained_condition(name: str, labelled: bool) -> str:
    """The condition ``model.condition: name`` trains on data with (``labelled``) or without class labels.

    ``auto`` is ``label`` where the data has class labels and ``cluster`` where it has none
    (label models scored FID 11-12 against 15-17 for clusters on Fashion-MNIST: docs/experiments.md);
    any other name is itself, whatever the data. A :class:`ConfigError` for an unknown name.
    """
    if name == AUTO_CONDITION:
        return "label" if labelled else "cluster"
    if name not in CONDITIONS:
        raise ConfigError(f"unknown model.condition {name!r}; choose one of {', '.join(CONDITIONS)} or {AUTO_CONDITION}.")
    return name


def condition_traits(name: str) -> ConditionTraits:
    """The traits of a trained condition ``name`` (not ``auto``); a :class:`ConfigError` for another name."""
    if name not in CONDITIONS:
        raise ConfigError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}.")
    return CONDITIONS[name]


def condition_needs_labels(name: str, labelled: bool) -> bool:
    """Whether ``model.condition: name`` on such data trains a condition that needs class labels."""
    return CONDITIONS[trained_condition(name, labelled)].labels


def uses_encoder(name: str) -> bool:
    """Whether ``model.condition: name`` trains on ResNet encodings, whatever the data (``auto`` never does)."""
    return any(CONDITIONS[trained_condition(name, labelled)].encoder for labelled in (True, False))


class ModelConfig(_Section):
    """The GAN's architecture and objective."""

    arch: Literal["dcgan", "upsample", "resnet"] = "dcgan"
    condition: Literal["auto", "none", "label", "encoding", "cluster"] = Field(
        "auto", description="Generator input: noise, noise + class embedding, noise + encoding of a real image, or "
        "noise + one of model.clusters pixel k-means clusters (trained like label, no labels needed; sampled like "
        "none: the generator draws the cluster); auto: label where the data has class labels, cluster where not.",
    )
    clusters: int = Field(20, ge=1, le=10000, description="k of the k-means clusters (condition: cluster, or auto "
                          "without labels); fewer on small data: at least 20 training images per cluster on average.")
    embed_dim: int = Field(32, ge=1, le=1024, description="Size of the class embedding (condition: label).")
    g_cond: Literal["input", "modulation"] = Field(
        "modulation", description="How a conditional generator takes the condition: input (beside the noise) or "
        "modulation (also a class-conditional gain and bias of every block's features, BigGAN's conditional "
        "BatchNorm). Without a condition (model.condition: none) there is nothing to modulate: both are the same.",
    )
    loss: Literal["bce", "lsgan", "hinge", "wgan-gp", "rpgan"] = "rpgan"
    gp_weight: float = Field(10.0, ge=0, le=1000, description="WGAN-GP's gradient penalty weight (wgan-gp only).")
    r1_gamma: float = Field(
        0.1, ge=0, le=10000, description="γ of the R1 penalty γ/2·E||∇D(x)||² on real images (any loss); 0 = off."
    )
    r2_gamma: Optional[float] = Field(
        None, ge=0, le=10000, description="γ of the R2 penalty (the same on generated images); null = r1_gamma."
    )
    reg_every: int = Field(
        4, ge=1, le=256, description="Lazy regularisation: R1/R2 every this many D updates, weighted by it (StyleGAN2)."
    )
    z_dim: int = Field(100, ge=1, le=4096)
    g_width: int = Field(32, ge=4, le=2048)
    d_width: int = Field(32, ge=4, le=2048)
    d_norm: Literal["auto", "batch", "layer", "none"] = Field(
        "auto", description="Normalisation in D; auto = none for resnet, layer for wgan-gp, else batch (dcgan) or none."
    )
    spectral_norm: bool = False
    d_dropout: Optional[float] = Field(None, ge=0, lt=1, description="Dropout in D; null = the arch's own (0 / 0.4).")
    stage_widths: Optional[list[Annotated[int, Field(ge=4, le=4096)]]] = Field(
        None, description="arch resnet: channels per stage (resolution), coarsest first, for G and D; "
        "null = derived from g_width/d_width (DCGAN's channels per resolution; width/4 at full size).",
    )
    resnet_block: Literal["grouped", "depthwise", "basic"] = Field(
        "depthwise", description="arch resnet: the residual branch (fashiongen.models.resnet.BLOCKS): grouped or "
        "depthwise inverted bottleneck (1x1, 3x3, 1x1 at 2x width), or basic (two 3x3).",
    )
    resnet_group_width: int = Field(16, ge=1, le=4096, description="arch resnet, block grouped: channels per group.")
    resnet_blocks: int = Field(1, ge=1, le=16, description="arch resnet: residual blocks per stage.")

    @model_validator(mode="after")
    def _penalty_needs_per_sample_norm(self) -> "ModelConfig":
        if self.loss == "wgan-gp" and self.d_norm == "batch":
            raise ValueError(
                "model.d_norm = 'batch' with model.loss = 'wgan-gp': the gradient penalty is per image and "
                "batch norm mixes images; set model.d_norm to 'layer', 'none' or 'auto'"
            )
        return self

    @model_validator(mode="after")
    def _resnet_options_fit_the_arch(self) -> "ModelConfig":
        if self.arch != "resnet":
            if self.stage_widths is not None:
                raise ValueError(f"model.stage_widths is for model.arch resnet, not {self.arch!r}; set it to null")
            return self
        if self.d_norm in ("batch", "layer"):
            raise ValueError(f"model.d_norm = {self.d_norm!r} with model.arch = 'resnet': its discriminator has no "
                             "normalisation layers (R3GAN); set model.d_norm to auto or none")
        if self.d_dropout:
            raise ValueError(f"model.d_dropout = {self.d_dropout} with model.arch = 'resnet': its discriminator has no "
                             "dropout (R3GAN); set model.d_dropout: null")
        if self.spectral_norm:
            raise ValueError("model.spectral_norm with model.arch = 'resnet': its residual branches start at zero "
                             "(fix-up initialisation), which spectral normalisation turns into NaN; set "
                             "model.spectral_norm: false (R3GAN regularises with model.r1_gamma instead)")
        if self.resnet_block == "grouped":
            # a grouped block expands C to 2C channels in groups of resnet_group_width; derived stage widths are
            # width // 4 and width * 2^k, so 2 * (width // 4) and 2 * width cover every stage
            # (the number of stage widths is checked against the image size when the networks are built)
            stages = self.stage_widths or [w for width in (self.g_width, self.d_width) for w in (width // 4, width)]
            bad = sorted({w for w in stages if (2 * w) % self.resnet_group_width})
            if bad:
                raise ValueError(
                    f"model.resnet_group_width = {self.resnet_group_width} does not divide the expanded width (2x) "
                    f"of stages of {bad} channels; choose a group width that divides them or other widths"
                )
        return self

    def arch_options(self) -> dict[str, Any]:
        """The networks' shape keywords beyond the widths: resnet's knobs (empty for the other architectures)."""
        if self.arch != "resnet":
            return {}
        options = {"stage_widths": None if self.stage_widths is None else list(self.stage_widths),
                   "block": self.resnet_block, "blocks_per_stage": self.resnet_blocks}
        if self.resnet_block == "grouped":  # the other blocks have no groups (PARAM_USES: unused there)
            options["group_width"] = self.resnet_group_width
        return options

    def resolved_r2_gamma(self) -> float:
        """R2's γ: ``r2_gamma``, or R1's when it is null."""
        return self.r1_gamma if self.r2_gamma is None else self.r2_gamma

    def resolved_d_norm(self) -> str:
        if self.d_norm != "auto":
            return self.d_norm
        if self.arch == "resnet":
            return "none"
        if self.loss == "wgan-gp":
            return "layer"
        return "batch" if self.arch == "dcgan" else "none"


class TrainConfig(_Section):
    """How the GAN is optimised."""

    epochs: int = Field(30, ge=1, le=100000)
    batch_size: int = Field(128, ge=2, le=65536)
    steps_per_epoch: Optional[int] = Field(
        None, ge=1, description="At most this many steps per epoch (a fresh random draw of the split each epoch); "
        "null = the whole split. Bounds the time of an epoch on a big folder.",
    )
    lr_g: float = Field(1.5e-3, gt=0, le=1)
    lr_d: float = Field(1.5e-3, gt=0, le=1)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    seed: int = Field(0, ge=0, lt=2**32)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = Field(50, ge=1, description="Steps between logged loss values.")
    eval_every: int = Field(
        1, ge=0, description="Epochs between in-training FID measurements; 0 turns them off."
    )
    eval_samples: int = Field(2000, ge=100, le=100000)
    checkpoint_every: int = Field(1, ge=1, description="Epochs between checkpoints (and always the last).")
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="Newest checkpoints kept; older ones deleted.")
    resume: bool = Field(
        True, description="Continue a run that was interrupted before its end, or publish again the finished run, "
        "when the code, the params it uses and the data are the same; false: train afresh."
    )
    extend: bool = Field(
        False, description="Continue the finished run of the same code, params and data but fewer epochs up to "
        "train.epochs, instead of training afresh.",
    )
    select: Literal["last", "best"] = Field(
        "best", description="Which generator becomes models/generator.pt: the last epoch's, or the epoch's with the "
        "lowest in-training FID (train.eval_every > 0; FID of train.eval_samples samples against training images).",
    )
    schedule: Literal["constant", "cosine", "linear"] = Field(
        "cosine", description="Shape of the decay of the learning rates and R1/R2 weights over the run's steps."
    )
    lr_end_ratio: float = Field(0.05, gt=0, le=1, description="Learning rates at the last step ÷ at the first.")
    gamma_end_ratio: float = Field(1.0, ge=0, le=1, description="R1/R2 weights at the last step ÷ at the first.")
    ema_kimg: float = Field(
        100.0, ge=0, le=100000,
        description="Half-life of the generator's weight average, in thousands of images (StyleGAN2-ADA); 0 = no average.",
    )
    ema_rampup: Optional[float] = Field(
        0.05, gt=0, le=1,
        description="Early in the run the half-life is at most this × the images seen so far; null = no ramp-up.",
    )
    d_steps: int = Field(1, ge=1, le=10, description="Discriminator updates per generator update.")
    reg_chunk: Union[Literal["auto"], Annotated[int, Field(ge=1, le=65536)]] = Field(
        "auto",
        description="Images per R1/R2 pass (its memory grows with it): N = separate passes over N images at a time, "
        "a batch of at most N shares the D step's own pass; auto = the whole batch while batch_size × H × W is at "
        f"most {REG_PIXELS_PER_PASS} pixels (28 to 64 px at batch 128), else chunks of {REG_PIXELS_PER_PASS} / "
        "(H × W) images (32 at 128 px). Chunks change the numbers only for a discriminator with batch norm.",
    )
    augment: list[AugmentName] = Field(
        default_factory=list, description="DiffAugment policies applied to real and fake images."
    )
    amp: bool = Field(True, description="bf16 autocast for the forward passes on a GPU (on a CPU: cpu_bf16).")
    cpu_bf16: bool = Field(
        False,
        description="bf16 autocast for the forward passes on a CPU as well; needs a CPU that computes bf16 natively "
        "(AVX512-BF16 or AMX), elsewhere the stage stops with an error. Changes the numerics: a run of its own.",
    )
    compile: bool = Field(False, description="Wrap both networks with torch.compile.")

    def resolved_reg_chunk(self, image_size: int) -> int | None:
        """Images per separate R1/R2 pass for ``image_size`` (H = W) px images; None = the D step's own pass."""
        if self.reg_chunk == "auto":
            if self.batch_size * image_size**2 <= REG_PIXELS_PER_PASS:
                return None
            return max(1, REG_PIXELS_PER_PASS // image_size**2)
        return None if self.reg_chunk >= self.batch_size else self.reg_chunk


class EvaluateConfig(_Section):
    """How the trained generator is scored."""

    num_samples: int = Field(10000, ge=100, le=1000000)
    batch_size: int = Field(1000, ge=1, le=65536)
    features: Literal["evaluator", "inception"] = Field(
        "evaluator",
        description="What FID, KID, IS and precision/recall are measured in: the pipeline's evaluator (offline) "
        "or the standard FID Inception-V3 (needs its weights: inception_weights).",
    )
    inception_weights: Optional[str] = Field(
        None, description="Path of weights-inception-2015-12-05-6726825d.pth; null = torch's hub cache."
    )
    seed: int = Field(0, ge=0, lt=2**32)
    kid_subsets: int = Field(100, ge=1, le=10000)
    kid_subset_size: int = Field(1000, ge=2, description="Capped at num_samples and at the real images scored against.")
    is_splits: int = Field(10, ge=2, le=100)
    pr_neighbours: int = Field(3, ge=1, le=100, description="k of the k-NN precision/recall.")
    diversity_groups: int = Field(100, ge=2, le=10000, description="Conditions sampled for the diversity metric.")
    diversity_per_group: int = Field(10, ge=2, le=1000, description="Samples per condition for the diversity metric.")
    truncation: list[float] = Field(
        default_factory=lambda: [1.0, 0.8, 0.6],
        description="ψ values whose FID/precision/recall are measured (truncated-normal noise, 1 = none); [] = off.",
    )
    copy_percentile: float = Field(
        5.0, gt=0, lt=100,
        description="Copy threshold: this percentile of real test images' distances to their nearest training image.",
    )
    underproduced_ratio: float = Field(
        0.5, gt=0, le=1, description="A class is under-produced when its sample share is below this × its real share."
    )

    @model_validator(mode="after")
    def _truncation_in_range(self) -> "EvaluateConfig":
        bad = [psi for psi in self.truncation if not 0 < psi <= 1]
        if bad:
            raise ValueError(f"evaluate.truncation: every ψ must lie in (0, 1] (1 = no truncation), got {bad}")
        if len(set(self.truncation)) != len(self.truncation):
            raise ValueError(f"evaluate.truncation lists a ψ twice: {self.truncation}")
        return self


class Params(_Section):
    """The whole of params.yaml."""

    data: DataConfig = Field(default_factory=DataConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)


# --- Which params a training run uses ----------------------------------------------------------
# Some params matter only to some choices: model.clusters to cluster models, model.gp_weight to WGAN-GP,
# the resnet knobs to arch resnet. A training run's identity and the params its generator file records
# hold only the params it uses (fashiongen.gan.run_identity), so a change of one it does not use
# publishes the finished run again in seconds instead of training the same weights again.


@dataclass(frozen=True)
class ParamUse:
    """``name`` (dotted) changes a training run only where ``used(params, condition)`` holds.

    ``condition`` is the condition trained (``auto`` resolved: :func:`trained_condition`);
    ``when`` says where it is used, in words, for the log.
    """

    name: str
    when: str
    used: Callable[["Params", str], bool]


def _regularised(params: "Params", condition: str) -> bool:
    return params.model.r1_gamma > 0 or params.model.resolved_r2_gamma() > 0


def _decaying(params: "Params", condition: str) -> bool:
    return params.train.schedule != "constant"


def _resnet(params: "Params", condition: str) -> bool:
    return params.model.arch == "resnet"


PARAM_USES: tuple[ParamUse, ...] = (
    ParamUse("model.clusters", "model.condition cluster", lambda p, c: c == "cluster"),
    ParamUse("model.embed_dim", "a label or cluster model", lambda p, c: CONDITIONS[c].class_code),
    ParamUse("model.g_cond", "a conditional model", lambda p, c: CONDITIONS[c].takes_code),
    ParamUse("model.gp_weight", "model.loss wgan-gp", lambda p, c: p.model.loss == "wgan-gp"),
    ParamUse("model.reg_every", "R1 or R2 on (model.r1_gamma or r2_gamma > 0)", _regularised),
    ParamUse("model.stage_widths", "model.arch resnet", _resnet),
    ParamUse("model.resnet_block", "model.arch resnet", _resnet),
    ParamUse("model.resnet_blocks", "model.arch resnet", _resnet),
    ParamUse("model.resnet_group_width", "model.arch resnet with resnet_block grouped",
             lambda p, c: _resnet(p, c) and p.model.resnet_block == "grouped"),
    ParamUse("train.lr_end_ratio", "a decaying train.schedule (not constant)", _decaying),
    ParamUse("train.gamma_end_ratio", "a decaying train.schedule with R1 or R2 on",
             lambda p, c: _decaying(p, c) and _regularised(p, c)),
    ParamUse("train.reg_chunk", "R1 or R2 on (model.r1_gamma or r2_gamma > 0)", _regularised),
    ParamUse("train.ema_rampup", "train.ema_kimg > 0", lambda p, c: p.train.ema_kimg > 0),
    ParamUse("train.eval_samples", "train.eval_every > 0", lambda p, c: p.train.eval_every > 0),
)


def unused_params(params: Params, labelled: bool | None = None) -> dict[str, str]:
    """``{"model.clusters": "model.condition cluster", ...}``: the params of :data:`PARAM_USES` that a training run
    of ``params`` does not use, each with where it would be used.

    ``labelled`` (whether the data has class labels) resolves ``model.condition: auto``; a ValueError when the
    condition is ``auto`` and ``labelled`` is None.
    """
    if params.model.condition == AUTO_CONDITION and labelled is None:
        raise ValueError("model.condition auto: say whether the data is labelled to know which params it uses")
    condition = trained_condition(params.model.condition, bool(labelled))
    return {use.name: use.when for use in PARAM_USES if not use.used(params, condition)}


def read_yaml(path: Path) -> Any:
    """Parse a YAML 1.2 file, turning syntax errors into a ConfigError with the line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found. Run from the repository root (where params.yaml lives), "
            "or restore it with `git checkout params.yaml`."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read as YAML text ({getattr(exc, 'strerror', None) or type(exc).__name__}).") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def load_params(path: Path | str = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate params.yaml; every problem is reported at once."""
    path = Path(path)
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of sections (data, model, train, ...).")
    return parse_params(raw, source=str(path))


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate an already-parsed mapping; see :func:`load_params`."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: the dotted key, what is wrong, what is allowed."""
    problems = [_describe(error) for error in exc.errors()]
    noun = "problem" if len(problems) == 1 else "problems"
    lines = [f"{source} is invalid ({len(problems)} {noun}):"]
    lines += [f"  - {problem}" for problem in problems]
    lines.append(f"Fix {source} (or the `dvc exp run -S` override) and run again.")
    return "\n".join(lines)


# Keys that moved or were replaced: an old params.yaml gets an error naming the new key and why
# (extra="forbid" refuses the old one). Old dotted key -> (new dotted key, what changed).
MOVED_KEYS: dict[str, tuple[str, str]] = {
    "train.preload_max_gb": ("data.preload_max_gb", "it now bounds the images every stage holds in memory"),
    "train.ema": ("train.ema_kimg", "the average's half-life in thousands of images, 0 = off; a decay d at batch B "
                  "is a half-life of B·ln 0.5/ln d images"),
}


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden" and key in MOVED_KEYS:
        new_key, why = MOVED_KEYS[key]
        return f"{key}: moved to {new_key} ({why}); rename it in params.yaml (or in `-S {new_key}=...`)."
    if kind == "extra_forbidden":
        return f"{key}: unknown key.{_suggestion(loc)}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in {"model_type", "dict_type"}:
        return f"{key}: must be a mapping of keys, got {error['input']!r}"
    got = error.get("input")
    return f"{key} = {got!r}: {error['msg']} (got {type(got).__name__})"


def _suggestion(loc: list[str]) -> str:
    """'Did you mean ...' for a misspelt key, from the fields of its section."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    allowed = sorted(model.model_fields)
    prefix = ".".join(loc[:-1])
    dotted = [f"{prefix}.{name}" if prefix else name for name in allowed]
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    hint = f" Did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else ""
    return f"{hint} Allowed: {', '.join(dotted)}."
