"""The train_encoder and encode stages, and encoding a user's photos with the trained encoder.

Both stages do their work only when the configuration needs it: with
``model.condition`` other than ``encoding`` no generator uses an encoding, so
``train_encoder`` writes a placeholder saying so and ``encode`` writes only a
``meta.json`` of ``{"used": false}``. Those outputs do not change when
``encoder.*`` changes, so DVC does not retrain the GAN of a model that does
not use the encoder, and the default pipeline does not pay for a ResNet it
does not need. Switching ``model.condition`` to ``encoding`` reruns both
stages for real (they read that param).

``data/encodings/`` holds ``train_encodings.npy`` and ``test_encodings.npy``
(float32, N×dim, row i = image i of the prepared split) and ``meta.json``:
training and evaluation look encodings up by index (:mod:`fashiongen.data.encodings` reads them) and
never run the ResNet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashiongen.atomic import atomic_directory, save_npy, write_json
from fashiongen.classifier import FitSettings, fit_classifier
from fashiongen.config import Params, uses_encoder
from fashiongen.data.batches import Images, ImageSource, PreloadBudget, labelled_split
from fashiongen.data.encodings import META_NAME, encodings_file
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.errors import CheckpointError, ConfigError
from fashiongen.metrics.features import extract
from fashiongen.model_files import ENCODER, read_model_file, save_model_file, state_dict_digest
from fashiongen.models.encoder import IMAGENET_FILES, IMAGENET_URL, Encoder, normalise_encodings
from fashiongen.seeding import seed_everything

log = logging.getLogger(__name__)

NOT_NEEDED = "model.condition is not 'encoding': no generator uses the encoder, so it was not trained"


@dataclass
class LoadedEncoder:
    model: Encoder
    config: dict
    id: str


def imagenet_weights_path(arch: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILES[arch]


def load_imagenet_backbone(model: Encoder, arch: str) -> None:
    """Start from torchvision's ImageNet weights, which must already be in torch's cache (no download)."""
    path = imagenet_weights_path(arch)
    if not path.is_file():
        raise ConfigError(
            f"encoder.weights is 'imagenet' but {path} is missing. Download {IMAGENET_URL}{IMAGENET_FILES[arch]} "
            f"to {path.parent}/ (or set TORCH_HOME), or set encoder.weights: fashion to train the encoder here."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit torchvision's {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}.")
    log.info("encoder starts from ImageNet weights %s", path)


def train_encoder(params: Params, prepared_dir: Path, model_path: Path, metrics_path: Path) -> dict:
    """Fit the encoder (or write the placeholder when no generator will use it)."""
    cfg = params.encoder
    if not uses_encoder(params.model.condition):
        save_model_file(model_path, ENCODER, {"trained": False, "reason": NOT_NEEDED})
        metrics = {"trained": False}
        write_json(metrics_path, metrics)
        log.info("%s", NOT_NEEDED)
        return metrics
    seed_everything(cfg.seed)
    device = resolve_device("auto")
    data = load_prepared(prepared_dir)
    if not data.labelled:
        raise ConfigError(
            f"model.condition is 'encoding' but {prepared_dir} has no class labels (a folder without class "
            "subfolders), and the encoder learns by classifying; use model.condition auto or cluster (no "
            "labels needed), or sort the images into one subfolder per class."
        )
    budget = PreloadBudget.of(params.data)  # the splits on the device while they fit, else read per batch
    train, test = (labelled_split(data, name, device, budget) for name in ("train", "test"))
    config = {"arch": cfg.arch, "dim": cfg.dim, "num_classes": data.num_classes, "channels": data.channels,
              "keep_maxpool": cfg.keep_maxpool, "image_size": data.image_size}
    model = Encoder(cfg.arch, cfg.dim, data.num_classes, data.channels, cfg.keep_maxpool)
    if cfg.weights == "imagenet":
        load_imagenet_backbone(model, cfg.arch)
    model = model.to(device).to(memory_format=torch.channels_last)
    settings = FitSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                           steps_per_epoch=cfg.steps_per_epoch)
    accuracy, loss = fit_classifier(model, train, test, settings, device, "train_encoder")
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    encoder_id = f"encoder-{state_dict_digest(state)[:16]}"
    save_model_file(model_path, ENCODER, {"trained": True, "config": config, "state_dict": state,
                                          "id": encoder_id, "accuracy": accuracy, "weights": cfg.weights})
    metrics = {"trained": True, "accuracy": accuracy, "test_loss": loss, "id": encoder_id}
    write_json(metrics_path, metrics)
    return metrics


def load_encoder(path: Path | str, device: torch.device | str = "cpu") -> LoadedEncoder:
    payload = read_model_file(path, ENCODER)
    if not payload["trained"]:
        raise CheckpointError(f"{path}: {payload['reason']}. Set model.condition: encoding and run `dvc repro`.")
    config = payload["config"]
    model = Encoder(config["arch"], config["dim"], config["num_classes"], config["channels"], config["keep_maxpool"])
    model.load_state_dict(payload["state_dict"])
    return LoadedEncoder(model.to(device).eval(), config, payload["id"])


def encode_images(encoder: LoadedEncoder, images: np.ndarray | torch.Tensor | Images, batch_size: int = 500,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Normalised encodings (float32, CPU, N × dim) of uint8 images N×C×H×W, read ``batch_size`` at a time."""
    projected, _ = extract(encoder.model, images, batch_size, device)
    return normalise_encodings(projected)


def encode_dataset(params: Params, prepared_dir: Path, encoder_path: Path, out_dir: Path) -> dict:
    """Write every train and test image's encoding once (or ``{"used": false}``)."""
    with atomic_directory(out_dir) as staging:
        if not uses_encoder(params.model.condition):
            meta = {"used": False}
            write_json(staging / META_NAME, meta)
            return meta
        device = resolve_device("auto")
        encoder = load_encoder(encoder_path, device)
        data = load_prepared(prepared_dir)
        for split in ("train", "test"):
            codes = encode_images(encoder, ImageSource(data.split(split).images), device=device)  # read per batch
            save_npy(encodings_file(staging, split), codes.numpy().astype(np.float32))
            log.info("%s: %d encodings of size %d", split, len(codes), codes.shape[1])
        meta = {"used": True, "dim": encoder.config["dim"], "encoder": encoder.id}
        write_json(staging / META_NAME, meta)
    return meta
