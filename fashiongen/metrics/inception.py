"""Standard FID features: the FID Inception-V3 network, for users who have its weights.

``evaluate.features: inception`` scores FID, KID, precision/recall on the
2048-d pool features and IS on the 1008 logits of the Inception-V3 that the
original TensorFlow FID used, as torch-fidelity ports it (the network
torchmetrics' FID wraps). Numbers are then comparable with papers, which the
pipeline's own evaluator (the default) never is. The price: 299-px inputs, so
on a CPU it is about a hundred times slower than the evaluator.

Its weights cannot be downloaded on every machine, so FashionGen never fetches
them behind the user's back: it reads them from ``evaluate.inception_weights``
or from torch's hub cache, where torch-fidelity and torchmetrics put them, and
otherwise stops with the URL and the place to put the file. The weights'
digest becomes the ruler's id in the metrics file, like the evaluator's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fashiongen.errors import CheckpointError
from fashiongen.metrics.features import device_batches
from fashiongen.model_files import state_dict_digest

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURES = ("2048", "logits_unbiased")  # pool features (FID, KID, P/R) and the logits torchmetrics' IS uses
MAX_BATCH = 200  # 299-px activations: ~5 MB per image in the first layers


def cached_weights_path() -> Path:
    """Where torch-fidelity and torchmetrics keep the weights once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(configured: str | None) -> Path:
    """The weights file to use; a :class:`CheckpointError` saying where to get it when there is none."""
    path = Path(configured).expanduser() if configured else cached_weights_path()
    if path.is_file():
        return path
    where = f"evaluate.inception_weights ({path})" if configured else f"torch's cache ({path})"
    raise CheckpointError(
        f"evaluate.features: inception needs the FID Inception-V3 weights, and {where} has no such file. "
        f"Download {WEIGHTS_URL} on a machine with internet and put it at {cached_weights_path()} "
        "or set evaluate.inception_weights to its path; or use evaluate.features: evaluator (works offline)."
    )


class InceptionFeatures:
    """The FID Inception-V3 as a feature space: an id, and features and logits of uint8 images."""

    def __init__(self, weights: Path, device: torch.device | str = "cpu"):
        state_dict = _read_state_dict(weights)
        self.id = f"inception-{state_dict_digest(state_dict)[:16]}"
        self.recipe = self.id  # fixed published weights: the same file is the same ruler everywhere
        self.device = device
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # the file was checked above as a plain tensor dict, so torch-fidelity's own (pickle) load of it is safe
        self.model = FeatureExtractorInceptionV3("inception-v3-compat", list(FEATURES), str(weights)).to(device)

    @torch.inference_mode()
    def extract(self, images: np.ndarray | torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool features and logits (float32, CPU) of uint8 N×C×H×W images; grey images are repeated to RGB."""
        features, logits = [], []
        for batch in device_batches(images, min(batch_size, MAX_BATCH), self.device):
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            pool, logit = self.model(batch.contiguous())
            features.append(pool.float().cpu())
            logits.append(logit.float().cpu())
        return torch.cat(features), torch.cat(logits)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The weights as a tensor dict (no pickled code), checked to be the FID Inception's."""
    fix = f"download {WEIGHTS_URL} again"
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged files raise many exception types
        raise CheckpointError(f"{path} is unreadable as Inception weights ({type(exc).__name__}); {fix}.") from None
    fc = state_dict.get("fc.weight") if isinstance(state_dict, dict) else None
    if not isinstance(fc, torch.Tensor) or tuple(fc.shape) != (1008, 2048):
        raise CheckpointError(f"{path} is not the FID Inception-V3 weights (no 1008×2048 fc.weight); {fix}.")
    return state_dict
