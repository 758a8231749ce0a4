"""The train_encoder stage: the ResNet whose encodings condition the generator; writes models/encoder.pt.

It does real work only with ``model.condition: encoding``; otherwise it writes
a fixed placeholder saying so, which does not change when ``encoder.*``
changes, so DVC retrains nothing after it. The encoder learns by classifying
the prepared images (so it needs class labels), from scratch
(``encoder.weights: fashion``) or from torchvision's ImageNet weights found in
torch's cache (``imagenet``; nothing is downloaded).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fashiongen.atomic import write_json
from fashiongen.classifier import FitSettings, fit_classifier
from fashiongen.config import Params, uses_encoder
from fashiongen.data.batches import PreloadBudget, labelled_split
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.errors import CheckpointError, ConfigError
from fashiongen.model_files import ENCODER, save_model_file, state_dict_digest
from fashiongen.models.encoder import IMAGENET_FILES, IMAGENET_URL, Encoder
from fashiongen.seeding import seed_everything

log = logging.getLogger(__name__)

NOT_NEEDED = "model.condition is not 'encoding': no generator uses the encoder, so it was not trained"


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
