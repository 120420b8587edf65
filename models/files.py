"""Files in the artist's folders: listed and opened only when regular, written without ever overwriting.

Only regular files (or links to them) are listed or read: a FIFO or device named like an image or a model
would block its reader forever or never end, so the file type is checked without opening it, and again on
the open handle (one could be put in place after the listing).

Written data goes to a temporary file with a unique name (several saves may run at once, in threads
or processes) and only then gets its final name. A numbered save
claims that name atomically: a hard link fails if the name exists (also for a different case on
case-insensitive file systems), and then the next number is tried.
"""
import errno
import os
import stat
import tempfile

# File systems without hard links (FAT, some network shares) answer one of these.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}


def is_regular_file(path):
    """A regular file, or a link to one (by file type: nothing is opened); False for FIFOs, sockets, devices,
    folders, broken links and what cannot be examined."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):   # ValueError: a NUL in the name
        return False


def list_files(folder, extensions, recursive=False):
    """The regular files in ``folder`` (and its subfolders when ``recursive``) whose extension is one of
    ``extensions`` (lower case, with the dot), as sorted '/'-separated paths relative to ``folder``. Hidden
    files and folders (a leading dot: macOS's ._ copies, our own temporary files) are skipped."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        found += [os.path.relpath(os.path.join(top, n), folder).replace(os.sep, "/") for n in names
                  if os.path.splitext(n)[1].lower() in extensions and not n.startswith(".")
                  and is_regular_file(os.path.join(top, n))]
    return sorted(found)


def open_regular(path):
    """``path`` opened for binary reading if it is a regular file, else OSError, without blocking on a FIFO
    (put in place since it was listed, say)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{os.path.basename(path)} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
