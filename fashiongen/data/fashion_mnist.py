"""Fashion-MNIST: its four IDX files, their checksums, and how to obtain them.

Checksums are SHA-256 of the *decompressed* bytes. Debian's
``dataset-fashion-mnist`` ships the files recompressed, so the publisher's .gz
checksums do not match it, while the decompressed bytes are identical (their
MD5s equal the publisher's published raw MD5s). A file is streamed through the
hash into a temporary file and only renamed into place when size and hash
match: a truncated or tampered file is never left looking valid.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable

from fashiongen.atomic import atomic_write
from fashiongen.errors import DataError

log = logging.getLogger(__name__)

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SHAPE = (28, 28)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawFile:
    """One of the four IDX files: its name, decompressed size and SHA-256."""

    name: str
    size: int
    sha256: str


RAW_FILES = (
    RawFile("train-images-idx3-ubyte", 47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    RawFile("train-labels-idx1-ubyte", 60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    RawFile("t10k-images-idx3-ubyte", 7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    RawFile("t10k-labels-idx1-ubyte", 10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
)
# split -> (images file, labels file)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

Opener = Callable[[], IO[bytes]]


@dataclass(frozen=True)
class Source:
    """A place one file may come from, and how to open its decompressed bytes."""

    description: str
    open: Opener


def fetch_fashion_mnist(
    dest: Path,
    local_dir: str | None,
    mirrors: Iterable[str],
    timeout_s: float,
    files: Iterable[RawFile] = RAW_FILES,
) -> None:
    """Put the four verified, decompressed IDX files into ``dest``.

    Sources are tried in order: ``local_dir`` (``name.gz`` or ``name``), then
    each mirror. A source that fails (missing, unreachable, corrupt, wrong
    checksum) is logged and the next one tried; if none works the error lists
    what every source said.
    """
    dest.mkdir(parents=True, exist_ok=True)
    mirrors = list(mirrors)
    for spec in files:
        target = dest / spec.name
        if target.exists() and _hash_file(target) == (spec.size, spec.sha256):
            log.info("%s: already present and verified", spec.name)
            continue
        failures = []
        for source in _sources(spec, local_dir, mirrors, timeout_s):
            try:
                _copy_verified(source, spec, target)
            except DataError as exc:
                log.warning("%s", exc)
                failures.append(str(exc))
                continue
            log.info("%s: verified, from %s", spec.name, source.description)
            break
        else:
            raise DataError(_nothing_worked(spec, local_dir, mirrors, failures))


def _sources(spec: RawFile, local_dir: str | None, mirrors: list[str], timeout_s: float) -> list[Source]:
    sources = []
    if local_dir:
        for candidate in (Path(local_dir) / f"{spec.name}.gz", Path(local_dir) / spec.name):
            if candidate.is_file():
                opener = _gzip_opener(candidate) if candidate.suffix == ".gz" else _file_opener(candidate)
                sources.append(Source(str(candidate), opener))
    for base in mirrors:
        url = f"{base.rstrip('/')}/{spec.name}.gz"
        sources.append(Source(url, _url_opener(url, timeout_s)))
    return sources


def _gzip_opener(path: Path) -> Opener:
    return lambda: gzip.open(path, "rb")


def _file_opener(path: Path) -> Opener:
    return lambda: open(path, "rb")


def _url_opener(url: str, timeout_s: float) -> Opener:
    def open_url() -> IO[bytes]:
        response = urllib.request.urlopen(url, timeout=timeout_s)  # noqa: S310 (http(s) mirrors from params)
        return gzip.GzipFile(fileobj=response)

    return open_url


def _copy_verified(source: Source, spec: RawFile, target: Path) -> None:
    """Stream ``source`` into ``target`` through the hash; keep it only if it matches."""
    digest = hashlib.sha256()
    size = 0
    try:
        with atomic_write(target) as out, source.open() as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                size += len(chunk)
                if size > spec.size:
                    raise DataError(f"{spec.name} from {source.description}: longer than the expected {spec.size} bytes.")
                digest.update(chunk)
                out.write(chunk)
            if size != spec.size:
                raise DataError(
                    f"{spec.name} from {source.description}: truncated ({size} of {spec.size} bytes)."
                )
            if digest.hexdigest() != spec.sha256:
                raise DataError(
                    f"{spec.name} from {source.description}: checksum mismatch "
                    f"(sha256 {digest.hexdigest()[:16]}..., expected {spec.sha256[:16]}...)."
                )
    except EOFError:
        raise DataError(f"{spec.name} from {source.description}: truncated (the gzip stream ends early).") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{spec.name} from {source.description}: corrupt gzip data ({exc}).") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{spec.name} from {source.description}: download failed ({reason}).") from None
    except OSError as exc:
        raise DataError(f"{spec.name} from {source.description}: cannot be read ({exc}).") from None


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def _nothing_worked(spec: RawFile, local_dir: str | None, mirrors: list[str], failures: list[str]) -> str:
    tried = "\n".join(f"  - {failure}" for failure in failures) or "  - (no source configured)"
    local_hint = (
        f"{local_dir} has no usable {spec.name}[.gz]"
        if local_dir
        else "data.local_dir is not set"
    )
    return (
        f"Could not obtain a valid {spec.name}. Tried:\n{tried}\n"
        f"({local_hint}; {len(mirrors)} mirror(s) configured.)\n"
        "Fix: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or point data.local_dir "
        "at a folder holding the four original IDX files, or check your network for data.mirrors."
    )
