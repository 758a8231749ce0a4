"""onnxruntime-web for the exported web page: one pinned npm release, checked file by file, cached.

The page (:mod:`fashiongen.web_export`) runs the generator with onnxruntime-web
(Microsoft, MIT licence), the WebAssembly build of ONNX Runtime. It needs three
files of the npm package ``onnxruntime-web`` at :data:`VERSION`:

- ``dist/ort.wasm.min.js``: the runtime as a classic script (defines ``ort``);
- ``dist/ort-wasm-simd-threaded.mjs``: the Emscripten glue it imports;
- ``dist/ort-wasm-simd-threaded.wasm``: the compiled runtime (about 15 MB).

Where they come from, first found wins:

1. ``source`` (``fashiongen export --onnxruntime-web PATH``): the package's
   ``.tgz`` (``npm pack onnxruntime-web@VERSION``) or its unpacked folder
   (``node_modules/onnxruntime-web``), for a machine that cannot reach npm;
2. the cache, ``$FASHIONGEN_CACHE`` (else ``$XDG_CACHE_HOME/fashiongen``, else
   ``~/.cache/fashiongen``), ``onnxruntime-web-VERSION/``;
3. a download of the package from the npm registry (``$npm_config_registry``,
   as npm itself reads it, else https://registry.npmjs.org), checked against
   the registry's SHA-512 integrity, then kept in the cache.

Every file is checked against its pinned SHA-256 each time it is used, from
whichever place; nothing the page runs is fetched when the page is viewed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from fashiongen.atomic import atomic_directory
from fashiongen.errors import FashionGenError

VERSION = "1.31.1"
PACKAGE = "onnxruntime-web"
# npm's `dist.integrity` of onnxruntime-web-1.31.1.tgz (`npm view onnxruntime-web@1.31.1 dist.integrity`)
TARBALL_INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
# path inside the package -> SHA-256 of the file in that release
FILES = {
    "dist/ort.wasm.min.js": "b8a78c408c40da65fdc8ba0846f7b2948e92a4c6d6b23cc8e4165e428ad95443",
    "dist/ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "dist/ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
DEFAULT_REGISTRY = "https://registry.npmjs.org"
DOWNLOAD_TIMEOUT_S = 120
_HOW_TO_GET = (f"on a machine with npm, run `npm pack {PACKAGE}@{VERSION}` and pass the .tgz it writes with "
               f"--onnxruntime-web PATH")


def cache_root() -> Path:
    """FashionGen's cache folder: ``$FASHIONGEN_CACHE``, else ``$XDG_CACHE_HOME/fashiongen``, else ``~/.cache/fashiongen``."""
    if os.environ.get("FASHIONGEN_CACHE"):
        return Path(os.environ["FASHIONGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fashiongen"


def tarball_url() -> str:
    """The package's address on the npm registry npm itself would use (``$npm_config_registry``)."""
    registry = (os.environ.get("npm_config_registry") or DEFAULT_REGISTRY).rstrip("/")
    return f"{registry}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def runtime_folder(source: Path | None = None) -> Path:
    """A folder holding the three runtime files (named as in the package's ``dist/``), each checked.

    ``source``: a ``.tgz`` or an unpacked package folder to take them from (then cached).
    Raises :class:`FashionGenError` naming the problem and the fix when a file is missing or not the
    pinned release's, or when the download fails.
    """
    target = cache_root() / f"{PACKAGE}-{VERSION}"
    if source is not None:
        _store(target, _files_from_source(Path(source)))
    elif not _cached(target):
        _store(target, _files_from_tarball(_download(), tarball_url()))
    problems = _check_folder(target)
    if problems:
        raise FashionGenError(f"the cached {PACKAGE} in {target} is damaged ({'; '.join(problems)}); delete that "
                              "folder and export again.")
    return target


def _cached(target: Path) -> bool:
    return all((target / Path(name).name).is_file() for name in FILES)


def _check_folder(folder: Path) -> list[str]:
    problems = []
    for name, digest in FILES.items():
        path = folder / Path(name).name
        if not path.is_file():
            problems.append(f"{path.name} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{path.name} is not the file of {PACKAGE} {VERSION}")
    return problems


def _store(target: Path, files: dict[str, bytes]) -> None:
    with atomic_directory(target) as staging:
        for name, data in files.items():
            (staging / Path(name).name).write_bytes(data)


def _checked(files: dict[str, bytes], where: str) -> dict[str, bytes]:
    for name, digest in FILES.items():
        if name not in files:
            raise FashionGenError(f"{where} has no {name}; is it {PACKAGE} {VERSION}? {_HOW_TO_GET}.")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise FashionGenError(f"{where}: {name} is not the file of {PACKAGE} {VERSION} (another version, or "
                                  f"damaged); {_HOW_TO_GET}.")
    return files


def _files_from_source(source: Path) -> dict[str, bytes]:
    if source.is_dir():
        root = source / "package" if (source / "package" / "dist").is_dir() else source
        return _checked({name: (root / name).read_bytes() for name in FILES if (root / name).is_file()}, str(source))
    if not source.is_file():
        raise FashionGenError(f"--onnxruntime-web {source} does not exist; {_HOW_TO_GET}.")
    return _files_from_tarball(source.read_bytes(), str(source))


def _files_from_tarball(data: bytes, where: str) -> dict[str, bytes]:
    wanted = {f"package/{name}": name for name in FILES}
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    files[wanted[member.name]] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FashionGenError(f"{where} is not an npm package tarball ({exc}); {_HOW_TO_GET}.") from None
    return _checked(files, where)


def _download() -> bytes:
    url = tarball_url()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FashionGenError(f"could not download {PACKAGE} {VERSION} from {url} ({exc}); {_HOW_TO_GET}.") from None
    algorithm, _, expected = TARBALL_INTEGRITY.partition("-")
    found = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if found != expected:
        raise FashionGenError(f"{url} did not give the published {PACKAGE} {VERSION} (its {algorithm} differs: a "
                              f"proxy or a damaged download); try again, or {_HOW_TO_GET}.")
    return data
