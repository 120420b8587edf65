"""Numbered output files from a user's filename_prefix, shared by Save Autoencoder and the headless
Save/Preview Image stand-ins: the prefix may name subfolders but never leave the output folder."""
import itertools
import os
import re

from ..models.errors import AtelierError

_BAD_CHARACTERS = re.compile(r'[<>:"|?*\x00-\x1f]')
# Counters of more digits are strays (hand-named files), not saves: following them would make names too long.
_MAX_DIGITS = 9


def prefix_problem(prefix):
    """Why ``prefix`` cannot name a saved file (a message), or None."""
    if not isinstance(prefix, str):
        return f"filename_prefix must be text, got {prefix!r}"
    parts = re.split(r"[\\/]", prefix)
    if not prefix or os.path.isabs(prefix) or prefix.startswith(("/", "\\")) or ".." in parts \
            or any(p in ("", ".") for p in parts) or _BAD_CHARACTERS.search(prefix) or len(prefix) > 200:
        return (f"filename_prefix {prefix!r} is not allowed; use a plain name like 'my_style' or "
                "'portraits/my_style' (no '..', no absolute paths, no <>:\"|?*)")
    return None


def validate_prefix(filename_prefix):
    """The savers' VALIDATE_INPUTS: a bad prefix is refused before the prompt does any work (training, say),
    not after it. A linked prefix has no value yet (None) and is checked when saving."""
    return filename_prefix is None or prefix_problem(filename_prefix) or True


def numbered_files(prefix, folder, suffix):
    """(directory, stem, subfolder, first counter worth trying) for files ``<stem>_NNNNN<suffix>`` under
    ``folder``. The counter only starts the search: ``candidates`` and models.files.write_new_file claim a
    name atomically, so two saves at once never get the same one."""
    problem = prefix_problem(prefix)
    if problem:
        raise AtelierError(problem)
    parts = re.split(r"[\\/]", prefix)
    directory = os.path.join(folder, *parts[:-1])
    os.makedirs(directory, exist_ok=True)
    stem = parts[-1]
    # Case-folded: on Windows and macOS 'Portrait_00001' and 'portrait_00001' are the same file.
    pattern = re.compile(re.escape(stem.casefold()) + r"_(\d{5,%d})" % _MAX_DIGITS + re.escape(suffix.casefold()) + "$")
    used = [int(m.group(1)) for n in os.listdir(directory) if (m := pattern.match(n.casefold()))]
    return directory, stem, "/".join(parts[:-1]), max(used, default=0) + 1


def candidates(directory, stem, suffix, counter):
    """``directory/<stem>_NNNNN<suffix>`` for counter, counter + 1, ..."""
    return (os.path.join(directory, f"{stem}_{n:05d}{suffix}") for n in itertools.count(counter))
