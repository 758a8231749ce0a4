"""The encode stage: every prepared image's ResNet encoding, written once to data/encodings.

With ``model.condition`` other than ``encoding`` it writes only a ``meta.json``
of ``{"used": false}``, which does not change when the encoder does, so DVC
retrains nothing after it. Training and evaluation look the encodings up by
index (:mod:`fashiongen.data.encodings`) and never run the ResNet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fashiongen.atomic import atomic_directory, save_npy, write_json
from fashiongen.config import Params, uses_encoder
from fashiongen.data.batches import ImageSource
from fashiongen.data.encodings import META_NAME, encodings_file
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.encoding import encode_images, load_encoder

log = logging.getLogger(__name__)


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
