"""Writing files that never overwrite another save and never leave half a file under a real name.

The data goes to a temporary file with a unique name (several saves may run at once, in threads
or processes) and only then gets its final name. A numbered save
claims that name atomically: a hard link fails if the name exists (also for a different case on
case-insensitive file systems), and then the next number is tried.
"""
import errno
import os
import tempfile

# File systems without hard links (FAT, some network shares) answer one of these.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}


def _write_temp(folder, write):
    fd, tmp = tempfile.mkstemp(prefix=".atelier-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide saved models from other users of a shared install
        write(tmp)
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def replace_file(path, write):
    """Write ``path`` with ``write(temporary_path)``, atomically replacing what was there (a reader sees the
    old file or the new one, never half)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _write_temp(folder, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    return path


def _claim(tmp, path):
    """Give ``tmp`` the name ``path`` unless it exists; False when it does."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
    try:  # no hard links: reserve the name exclusively, then move the data onto the reservation
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove(path)
        raise
    return True


def write_new_file(candidates, write, attempts=10_000):
    """Write a file with ``write(temporary_path)`` and give it the first name from ``candidates`` (paths in
    one folder) that no file holds yet; returns that path. Nothing existing is ever replaced."""
    candidates = iter(candidates)
    first = next(candidates)
    folder = os.path.dirname(os.path.abspath(first))
    os.makedirs(folder, exist_ok=True)
    tmp = _write_temp(folder, write)
    try:
        path = first
        for _ in range(attempts):
            if _claim(tmp, path):
                return path
            path = next(candidates)
        raise FileExistsError(errno.EEXIST, f"no free name after {attempts} tries", first)
    finally:
        _remove(tmp)  # after a link (or a failure); after the O_EXCL fallback it is already gone
