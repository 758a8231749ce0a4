"""Walking a photo folder: every entry under it is an image candidate, skipped, not an image, or ignored.

Shared by the ``download`` stage (``fashiongen.data.folder.scan_folder``) and
``fashiongen check-folder``, so both see a folder the same way:

- symbolic links to files and to folders are followed; a link to a folder that
  contains it (a loop) is not followed, and a link that points nowhere is
  skipped like an unreadable file;
- a file is an image candidate when its first bytes are those of a JPEG, PNG,
  WebP, GIF, BMP or TIFF file (whatever its name: ``IMG_1.JPG``, ``a.jpeg_``,
  no extension) or when its extension is an image one (it is then tried, and
  skipped with the reason if it does not decode);
- what operating systems, notebooks, editors and downloaders leave behind
  (``.DS_Store``, ``Thumbs.db``, ``desktop.ini``, AppleDouble ``._*`` files,
  ``__MACOSX``, ``.ipynb_checkpoints``, ``name~``, ``#name#``, ``.swp``,
  ``.bak``, ``.part``, hidden files and folders) is ignored, with the reason,
  and counted;
- everything else is counted as "not an image".

Paths are relative to the folder, POSIX, in sorted order; names that are not
valid UTF-8 are kept as Python spells them (``os.fsdecode``, surrogate escapes)
so the file can still be opened. Reasons never contain the folder's location.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from fashiongen.data.image_files import IMAGE_SUFFIXES

# magic bytes of the formats the pipeline reads, at offset 0 (WebP: RIFF....WEBP)
IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
LITTER_FILES = {
    ".ds_store": "macOS folder settings (.DS_Store)",
    "thumbs.db": "Windows thumbnail cache (Thumbs.db)",
    "ehthumbs.db": "Windows thumbnail cache (ehthumbs.db)",
    "desktop.ini": "Windows folder settings (desktop.ini)",
    "icon\r": "macOS folder icon (Icon\\r)",
}
LITTER_FOLDERS = {
    "__macosx": "macOS archive metadata (__MACOSX)",
    "$recycle.bin": "Windows recycle bin",
    "system volume information": "Windows system folder",
    "@eadir": "Synology thumbnail folder (@eaDir)",
    ".ipynb_checkpoints": "Jupyter notebook checkpoints (.ipynb_checkpoints)",
    "__pycache__": "Python bytecode cache (__pycache__)",
}
# editors' and downloaders' leftovers, by the end of the name (a backup copy of a photo would be read twice)
LEFTOVER_SUFFIXES = {
    "~": "editor backup (name~)",
    ".swp": "Vim swap file",
    ".swo": "Vim swap file",
    ".bak": "backup copy (.bak)",
    ".orig": "merge or patch leftover (.orig)",
    ".tmp": "temporary file (.tmp)",
    ".part": "unfinished download (.part)",
    ".crdownload": "unfinished download (.crdownload)",
}


DANGLING_LINK = "is a symbolic link to nothing (its target is missing)"
UNREADABLE = "cannot be read"  # starts the reason of a file (or ends a folder's) that the OS refused to read


def unreadable(reason: str) -> str:
    return f"{UNREADABLE} ({reason})"


@dataclass(frozen=True)
class Problem:
    """A path (relative to the folder) and why it is not used."""

    path: str
    reason: str


@dataclass
class FolderListing:
    """Every entry under a folder, sorted by path within each list."""

    candidates: list[str] = field(default_factory=list)  # files to hash and decode
    skipped: list[Problem] = field(default_factory=list)  # meant to be images but cannot be read at all
    not_images: list[str] = field(default_factory=list)  # files whose content and name are not an image's
    ignored: list[Problem] = field(default_factory=list)  # OS litter, hidden entries, link loops

    def sort(self) -> "FolderListing":
        self.candidates.sort()
        self.skipped.sort(key=lambda p: p.path)
        self.not_images.sort()
        self.ignored.sort(key=lambda p: p.path)
        return self


def sniff_format(head: bytes) -> str | None:
    """The image format whose signature starts ``head`` (the first 16 bytes of a file), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for signature, name in IMAGE_SIGNATURES if head.startswith(signature)), None)


def litter_reason(name: str, is_dir: bool) -> str | None:
    """Why ``name`` is a leftover (operating system, notebook, editor, download) or hidden: ignored; None otherwise."""
    lowered = name.lower()
    if is_dir:
        if lowered in LITTER_FOLDERS:
            return LITTER_FOLDERS[lowered]
        return "hidden folder (not scanned)" if name.startswith(".") else None
    if lowered in LITTER_FILES:
        return LITTER_FILES[lowered]
    if name.startswith("._"):
        return "macOS AppleDouble file (._*)"
    if name.startswith(".~lock.") or (name.startswith("#") and name.endswith("#") and len(name) > 1):
        return "editor lock or autosave file"
    suffix = next((s for s in LEFTOVER_SUFFIXES if lowered.endswith(s)), None)
    if suffix:
        return LEFTOVER_SUFFIXES[suffix]
    return "hidden file" if name.startswith(".") else None


def natural_key(name: str) -> tuple:
    """Sort key putting ``2`` before ``10`` (digit runs compare as numbers); ties broken by the plain name."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), name


def display_path(path: str) -> str:
    """``path`` printable on any terminal: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def walk_folder(root: Path) -> FolderListing:
    """Classify every entry under ``root`` (see the module docstring); the folder itself must exist."""
    listing = FolderListing()
    _walk(root, "", {_identity(root)}, listing)
    return listing.sort()


def _identity(path: Path | str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _walk(directory: Path, prefix: str, ancestors: set, listing: FolderListing) -> None:
    """Classify the entries of ``directory`` as the OS lists them (no list of them is kept: a folder may hold
    100,000 photos); :func:`walk_folder` sorts the result."""
    try:
        entries = os.scandir(directory)
    except OSError as exc:
        listing.skipped.append(Problem(prefix.rstrip("/") or ".", "folder " + unreadable(exc.strerror)))
        return
    with entries:
        for entry in entries:
            _classify_entry(entry, prefix, ancestors, listing)


def _classify_entry(entry: os.DirEntry, prefix: str, ancestors: set, listing: FolderListing) -> None:
    path = prefix + entry.name
    try:
        is_dir = entry.is_dir()  # follows links
    except OSError:
        is_dir = False
    reason = litter_reason(entry.name, is_dir)
    if reason:
        listing.ignored.append(Problem(path, reason))
    elif entry.is_symlink() and not os.path.exists(entry.path):
        listing.skipped.append(Problem(path, DANGLING_LINK))
    elif is_dir:
        identity = _identity(entry.path)
        if identity in ancestors:
            listing.ignored.append(Problem(path, "symbolic link to a folder that contains it (a loop; not followed)"))
        else:
            _walk(Path(entry.path), path + "/", ancestors | {identity}, listing)
    elif not os.path.isfile(entry.path):
        listing.ignored.append(Problem(path, "not a regular file (a device, pipe or socket)"))
    else:
        _classify_file(entry.path, path, listing)


def _classify_file(location: str, path: str, listing: FolderListing) -> None:
    try:
        with open(location, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        listing.skipped.append(Problem(path, unreadable(exc.strerror or type(exc).__name__)))
        return
    if sniff_format(head) or Path(path).suffix.lower() in IMAGE_SUFFIXES:
        listing.candidates.append(path)
    else:
        listing.not_images.append(path)
