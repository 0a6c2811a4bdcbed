"""Outputs that never destroy anything the user did not name.

* `-y` replaces an existing **regular file** and nothing else: a folder where a file is
  expected, `.`, `..`, a block device, a socket, or the same file as an input is refused.
* A character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) and `-` (stdout)
  are written through, never replaced: `-o -` pipes to the next program.
* Regular files are written atomically: a temporary sibling renamed into place on success,
  removed on any failure (Ctrl-C and the signals vtoken.signals handles included).
* A folder output (PNG frames) is created atomically when new; an existing folder only
  ever receives its own entries (moved in on success), the rest of it is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError

STDOUT = "-"
_STDOUT_PATH = "/dev/stdout"


def _stat(path, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):
        return None


# Names of the process's own file descriptors: streams whatever they point at (a shell may
# have redirected stdout to a regular file, which the redirection already truncated).
_FD_NAMES = re.compile(r"^/(dev/(stdout|stderr|fd/\d+)|proc/(self|\d+)/fd/\d+)$")


def is_stream(path) -> bool:
    """`-`, /dev/stdout-like names, or an existing character device or FIFO (links
    followed): written through."""
    raw = os.fspath(path)
    if raw == STDOUT or _FD_NAMES.match(raw):
        return True
    st = _stat(path)
    return st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode))


def stream_path(path) -> Path:
    """The path to open for a stream output (`-` is stdout)."""
    return Path(_STDOUT_PATH if os.fspath(path) == STDOUT else os.fspath(path))


def same_file(a, b) -> bool:
    """Whether `a` and `b` name the same existing file or folder (links, hard links, `./x`)."""
    sa, sb = _stat(a), _stat(b)
    return sa is not None and sb is not None and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _is_dot_name(path) -> bool:
    s = os.fspath(path).rstrip("/" + os.sep)
    return os.path.basename(s) in (".", "..") or s == ""


def check_output_path(path: str | os.PathLike, overwrite: bool, inputs: Iterable = (),
                      directory: bool = False) -> Path:
    """Refuse an output that would destroy something; returns the path to write.

    `directory`: the output is a folder (PNG frames). `inputs`: the files this run reads;
    an output that is one of them is refused whatever `overwrite` says."""
    raw = os.fspath(path)
    if raw == "":
        raise OutputError("the output path is empty")
    if is_stream(raw):
        if directory:
            raise OutputError(f"{raw} is a pipe or device: it cannot hold a folder of PNG frames")
        return stream_path(raw)
    if _is_dot_name(raw):
        raise OutputError(f"{raw!r} is the current or parent folder, not an output: name a "
                          f"{'new folder, e.g. frames/' if directory else 'file'}")
    for src in inputs:
        if same_file(raw, src):
            raise OutputError(f"{raw} is also an input: write the output to another path")
    p = Path(raw)
    st = _stat(p)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            if not directory:
                raise OutputError(f"{p} is a folder: name a file to write (even with -y, a folder is "
                                  "never replaced)")
        elif not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{p} is not a regular file (a block device or socket): refusing to write it")
        elif directory:
            raise OutputError(f"{p} is a file: PNG frames need a folder (a path ending in /)")
        elif not overwrite:
            raise OutputError(f"{p} exists; pass -y/--overwrite to replace it")
        # A link to a regular file: write at its target, so the link stays a link.
        if p.is_symlink():
            p = Path(os.path.realpath(p))
    elif p.is_symlink():
        raise OutputError(f"{p} is a link to a missing file: refusing to follow it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {p}: folder {parent} is not writable")
    return p


def check_distinct_outputs(outputs: Iterable) -> None:
    """Refuse a batch in which two jobs would write the same output."""
    seen: dict[str, str] = {}
    for out in outputs:
        key = os.path.normcase(os.path.abspath(os.fspath(out)))
        if key in seen:
            raise OutputError(f"two inputs would both write {out}: rename one, or encode them in "
                              "separate runs")
        seen[key] = out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, directory: bool = False,
                inputs: Iterable = (), owned: re.Pattern | None = None) -> Iterator[Path]:
    """Yield the path to write `path` through (see the module docstring).

    Regular file: a temporary sibling, renamed to `path` on clean exit and removed on any
    exception. Stream (device, FIFO, `-`): the stream's own path. Folder (`directory`): a
    temporary folder; when `path` does not exist it is renamed into place, otherwise its
    entries are moved into `path`. Entries of an existing folder that match `owned` (the
    names the writer uses) count as earlier outputs: replaced only with `overwrite`."""
    target = check_output_path(path, overwrite, inputs, directory)
    if is_stream(path):
        yield target
        return
    existing_dir = directory and target.is_dir()
    if existing_dir:
        if not os.access(target, os.W_OK):
            raise OutputError(f"cannot write into {target}: the folder is not writable")
        if owned is not None and not overwrite:
            clash = sorted(n for n in os.listdir(target) if owned.match(n))
            if clash:
                raise OutputError(f"{target} already holds frames ({clash[0]}...); pass "
                                  "-y/--overwrite to replace them, or name another folder")
        tmp = Path(tempfile.mkdtemp(prefix=".vtoken.", suffix=".part", dir=target))
    elif directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        # mkstemp/mkdtemp make private (0600/0700) entries; an output gets the usual permissions.
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        yield tmp
        if existing_dir:
            _merge_into(tmp, target, overwrite)
        else:
            st = _stat(target, follow=False)
            if st is not None and not stat.S_ISREG(st.st_mode):
                # Something else appeared at the path while we wrote: never replace it.
                raise OutputError(f"{target} is no longer a regular file: output not written")
            if st is not None and not overwrite:
                raise OutputError(f"{target} appeared while writing; pass -y/--overwrite to replace it")
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp)
        raise


def _merge_into(tmp: Path, folder: Path, overwrite: bool) -> None:
    """Move every entry of `tmp` into `folder`; checked first, so a refusal moves nothing."""
    names = sorted(os.listdir(tmp))
    for name in names:
        st = _stat(folder / name, follow=False)
        if st is None:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{folder / name} exists and is not a regular file: output not written")
        if not overwrite:
            raise OutputError(f"{folder / name} exists; pass -y/--overwrite to replace it")
    from .signals import deferred

    try:
        with deferred():  # all frames move in, or (interrupted before) none do
            for name in names:
                os.replace(tmp / name, folder / name)
    except OSError as exc:
        raise OutputError(f"cannot write into {folder}: {exc.strerror or exc}") from exc
    tmp.rmdir()


def check_input_path(path, what: str = "input", folder_ok: bool = False) -> None:
    """Refuse an input vtoken cannot read safely: missing, a folder (unless `folder_ok`: PNG
    frames), or a pipe, device or socket (vtoken opens and seeks its inputs more than once;
    a device such as /dev/zero would never end)."""
    from .errors import InputError

    raw = os.fspath(path)
    if raw == STDOUT:
        raise InputError(f"{what} '-' (stdin) is not supported: vtoken seeks in its input; save it to a file first")
    st = _stat(raw)
    if st is None:
        raise InputError(f"cannot open {raw}: no such file" + (" (a broken link)" if os.path.islink(raw) else ""))
    if stat.S_ISDIR(st.st_mode):
        if not folder_ok:
            raise InputError(f"{raw} is a folder: give a {what}")
        return
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{raw} is a pipe or device, not a file: vtoken seeks in its input; "
                         "save it to a file first")
