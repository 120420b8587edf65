"""Numbered output files from a user's filename_prefix, shared by Save Autoencoder and the headless
Save/Preview Image stand-ins: the prefix may name subfolders but never leave the output folder."""
import os
import re

_BAD_CHARACTERS = re.compile(r'[<>:"|?*\x00-\x1f]')


def numbered_files(prefix, folder, suffix, node):
    """(directory, stem, subfolder, next free counter) for files ``<stem>_NNNNN<suffix>`` under ``folder``."""
    parts = re.split(r"[\\/]", prefix or "")
    if not prefix or os.path.isabs(prefix) or prefix.startswith(("/", "\\")) or ".." in parts \
            or any(p in ("", ".") for p in parts) or _BAD_CHARACTERS.search(prefix) or len(prefix) > 200:
        raise ValueError(f"{node}: filename_prefix {prefix!r} is not allowed; use a plain name like 'my_style' or "
                         "'portraits/my_style' (no '..', no absolute paths, no <>:\"|?*)")
    directory = os.path.join(folder, *parts[:-1])
    os.makedirs(directory, exist_ok=True)
    stem = parts[-1]
    pattern = re.compile(re.escape(stem) + r"_(\d{5,})" + re.escape(suffix) + "$")
    used = [int(m.group(1)) for n in os.listdir(directory) if (m := pattern.match(n))]
    return directory, stem, "/".join(parts[:-1]), max(used, default=0) + 1
