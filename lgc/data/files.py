"""Where dataset files live, and fetching them once when they are missing.

Order: an explicit ``data_dir``, else ``$LGC_DATA_DIR``, else ``$XDG_CACHE_HOME/lgc/data``
(``~/.cache/lgc/data``). Each dataset has its own sub-folder (``mnist/``, ``fashion-mnist/``,
``cifar-10/``). Downloads happen only for missing files and only when allowed
(``download=True`` and ``$LGC_NO_DOWNLOAD`` unset); otherwise :class:`MissingDataError` says
which files to put where.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import urllib.request


class MissingDataError(FileNotFoundError):
    """A dataset's files are absent and could not (or may not) be downloaded."""


def data_root(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The data directory this call uses (see the module docstring for the order)."""
    if data_dir:
        return pathlib.Path(data_dir).expanduser()
    if os.environ.get("LGC_DATA_DIR"):
        return pathlib.Path(os.environ["LGC_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "lgc" / "data"


def downloads_allowed(download: bool) -> bool:
    return bool(download) and not os.environ.get("LGC_NO_DOWNLOAD")


def find_file(folder: pathlib.Path, names: tuple[str, ...]) -> pathlib.Path | None:
    """The first of ``names`` present in ``folder``."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def fetch(folder: pathlib.Path, wanted: dict[str, tuple[str, ...]], urls: dict[str, list[str]], *,
          download: bool, dataset: str) -> dict[str, pathlib.Path]:
    """Resolve each wanted file (key -> accepted file names, first one is the download name).

    Missing files are downloaded from ``urls[key]`` (mirrors tried in order) when allowed; a file
    that is still missing raises :class:`MissingDataError` listing every file and URL."""
    found: dict[str, pathlib.Path] = {}
    missing = []
    for key, names in wanted.items():
        path = find_file(folder, names)
        if path is None and downloads_allowed(download):
            path = _download(folder / names[0], urls.get(key, []))
        if path is None:
            missing.append((key, names))
        else:
            found[key] = path
    if missing:
        lines = [f"{dataset}: missing data files in {folder}:"]
        for key, names in missing:
            alt = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
            src = f"  from {urls[key][0]}" if urls.get(key) else ""
            lines.append(f"  {folder / names[0]}{alt}{src}")
        why = ("downloads are off (--no-download or LGC_NO_DOWNLOAD)" if not downloads_allowed(download)
               else "the download failed (offline?)")
        lines.append(f"{why}; put the files there, or point --data-dir / LGC_DATA_DIR at a folder holding "
                     f"'{folder.name}/'.")
        raise MissingDataError("\n".join(lines))
    return found


def _download(dest: pathlib.Path, urls: list[str]) -> pathlib.Path | None:
    """Fetch the first URL that works into ``dest`` (atomically); None when all fail."""
    for url in urls:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(url, timeout=30) as resp, \
                    tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
                shutil.copyfileobj(resp, tmp)
            os.replace(tmp.name, dest)
            return dest
        except OSError:
            try:
                os.unlink(tmp.name)  # type: ignore[possibly-undefined]
            except (OSError, NameError):
                pass
    return None
