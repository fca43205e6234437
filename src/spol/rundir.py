"""A run folder's contract: its file names, what it was made from, what it owns, and who is using it.

* **Names.** Every file and folder a run writes is named here, once.
* **Ownership.** Every command claims its output folder (`claim_folder`): a new or empty folder is
  created and marked as the command's (``run.json``: ``{"created_by": "spol", "command": ...}``); a
  folder the same command made is resumed; a folder of another command, one inside another run
  folder, or one holding anything else than the command's names (`Outputs`, and spol's temporaries)
  is refused (the last unless the command lets the user allow it, ``--overwrite-foreign``);
  ``--force`` deletes only files spol names (`remove_owned`).
* **Records of inputs.** A run and each of its stages record what they were made from (`check_record`:
  the dataset's fingerprint, recipe sections, the digests of upstream models); a rerun with other
  inputs is refused with a message naming what changed, instead of reusing outputs made from them.
* **One user at a time.** `RunLock` keeps a second pipeline off a folder in use; a lock left by a
  killed process is noticed and taken over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from spol.fileio import make_folder, write_json_atomic

logger = logging.getLogger(__name__)

RUN_RECORD = "run.json"
"""Marks a spol run folder; records the dataset it was made from."""
DATASET_FILES = "dataset_files.jsonl"
"""The SHA-256 of every file of the run's dataset, by name relative to its folder (`spol.data.identity`)."""
CONFIG_FILE = "config.yaml"
PIPELINE_LOG = "pipeline.log"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
LOCALIZER_FILE = "localizer.json"
SELECTION_FILE = "selection.json"
LOCK_FILE = ".spol.lock"

RESULT_FILES = (METRICS_FILE, REPORT_FILE, LOCALIZER_FILE, SELECTION_FILE)
"""What a pipeline run concludes with; removed first when a ``--force`` rerun starts, so that a killed
rerun never leaves new models beside old results."""

STAGE_FOLDERS = ("classifier", "cam", "baseline_cam", "pseudo_masks", "seg", "select", "scoremaps")
"""Folders of a pipeline run (the demo adds its generated ``data``)."""

RUN_ENTRIES = frozenset(
    {RUN_RECORD, DATASET_FILES, CONFIG_FILE, PIPELINE_LOG, *RESULT_FILES, LOCK_FILE, *STAGE_FOLDERS, "data"}
)
"""Everything a pipeline run may hold at its top level."""

# One training stage's folder (spol.runtime.engine, spol.runtime.stage_folder).
MODEL_FILE = "model.pt"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
STAGE_LOG = "train.log"
METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tb"
INPUTS_FILE = "inputs.json"
STAGE_ENTRIES = frozenset(
    {CONFIG_FILE, STAGE_LOG, METRICS_CSV, TENSORBOARD_DIR, CHECKPOINT_DIR, MODEL_FILE, INPUTS_FILE, LOCALIZER_FILE}
)
"""Everything a training stage's folder may hold at its top level (``localizer.json``: train-cam, train-seg)."""


@dataclass(frozen=True)
class Outputs:
    """What one command writes at the top of its output folder, so that `claim_folder` tells its files from a user's.

    Attributes:
        command: the command (``"train-cam"``), recorded in the folder's mark (``run.json``, key ``command``).
        names: the names it writes there (its mark and spol's temporaries count as its own too).
        patterns: glob patterns of further names it writes (``"*_mask.png"``).
        proof: paths, relative to the folder, that only this command writes: a folder without the mark
            (made by an older spol) that holds one of them, and nothing but the command's names, is the
            command's and gets the mark. Empty: a folder without the mark is never the command's.
        mark: the command marks its folders; False: a folder is its own when it holds nothing but its
            names (`spol localize`, whose folders are no run folders).
        override: the option that lets the command write beside files that are not its own (named by
            the refusal), or None when it has none.
    """

    command: str
    names: frozenset[str]
    patterns: tuple[str, ...] = ()
    proof: tuple[str, ...] = ()
    mark: bool = True
    override: str | None = None

    def owns(self, name: str) -> bool:
        """Whether `name`, at the top of the command's folder, is one the command writes."""
        return (
            name in self.names
            or (self.mark and name == RUN_RECORD)
            or _is_temporary(name)
            or any(fnmatchcase(name, pattern) for pattern in self.patterns)
        )


PIPELINE_OUTPUTS = Outputs("pipeline", RUN_ENTRIES, override="--overwrite-foreign")
"""`spol pipeline`'s run folder (`spol demo`'s too: a pipeline run with its data). Marks without a
``command`` are the pipeline's: they predate the key."""


def stage_outputs(command: str) -> Outputs:
    """The folder of a training stage's command (``"train-cam"``...): `spol.runtime.engine`'s layout.

    A folder an older spol made without the mark is the command's when it holds only stage names and
    ``inputs.json`` or ``checkpoints/last.ckpt`` (never a ``model.pt`` alone: it may be a user's).
    """
    return Outputs(
        command,
        STAGE_ENTRIES,
        patterns=("hpc_ckpt_*.ckpt",),  # Lightning's checkpoint on a SLURM requeue, in the root folder
        proof=(INPUTS_FILE, f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"),
    )


def model_file(path: str | os.PathLike[str], *, stages: Iterable[str] = ()) -> Path:
    """The model file a command-line path names: the file itself, or the model.pt of a run folder.

    A folder may be a stage's (``train-cam --out``: ``path/model.pt``) or a pipeline run's, whose
    stage folders are tried in the order of `stages` (``("seg",)`` for the segmentation network).

    Raises:
        FileNotFoundError: no such file, and no model.pt where the folder's kind puts one.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in [path / MODEL_FILE, *(path / stage / MODEL_FILE for stage in stages)]:
            if candidate.is_file():
                return candidate
        places = " or ".join([MODEL_FILE, *(f"{stage}/{MODEL_FILE}" for stage in stages)])
        raise FileNotFoundError(
            f"{path} holds no {places}; pass a model file, a stage's run folder (train-* --out) or a finished "
            "pipeline run"
        )
    raise FileNotFoundError(f"{path} does not exist; pass a model file or a run folder holding {MODEL_FILE}")


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def foreign_entries(folder: Path, known: Iterable[str] | Outputs) -> list[str]:
    """Names at the top of `folder` that are neither `known` (names, or a command's `Outputs`) nor temporaries."""
    outputs = known if isinstance(known, Outputs) else Outputs("", frozenset(known), mark=False)
    return sorted(entry.name for entry in folder.iterdir() if not outputs.owns(entry.name))


def made_by(folder: Path) -> str | None:
    """The command whose mark `folder` carries (``"pipeline"`` for marks older than the key), or None."""
    record = read_record(Path(folder) / RUN_RECORD) or {}
    if record.get("created_by") != "spol":
        return None
    command = record.get("command", PIPELINE_OUTPUTS.command)
    return command if isinstance(command, str) else PIPELINE_OUTPUTS.command


def check_folder(
    folder: Path, outputs: Outputs = PIPELINE_OUTPUTS, *, overwrite_foreign: bool = False, option: str = "--out"
) -> None:
    """Refuse an output folder the command of `outputs` must not write into; reads only (`claim_folder` writes).

    Refused: a folder inside a run folder (`enclosing_run`), another command's folder, and a folder
    holding names the command does not write (`Outputs`), this last unless `overwrite_foreign`. A
    missing or empty folder, and one the command made, pass.

    Raises:
        FileExistsError: one line naming the folder, what is in the way and the fix.
    """
    folder = Path(folder)
    run = enclosing_run(Path(os.path.abspath(folder)).parent)
    if run is not None:
        raise FileExistsError(
            f"{option} {folder} lies in the spol run folder {run}; its files are the run's own: choose an "
            f"{option} outside it"
        )
    if not folder.is_dir():
        return  # missing (created later), or what make_folder names: a file, a dangling link
    maker = made_by(folder) if outputs.mark else None
    if maker is not None and maker != outputs.command:
        raise FileExistsError(
            f"{option} {folder} is the run folder of `spol {maker}`, whose files only that command writes: choose "
            f"a new or empty {option} for `spol {outputs.command}`"
        )
    foreign = foreign_entries(folder, outputs)
    proven = any((folder / path).exists() for path in outputs.proof)
    if outputs.mark and maker is None and not (proven and not foreign):
        if proven:  # an older spol's folder of the command, with other files in it
            what = f"files `spol {outputs.command}` does not write"
        else:
            foreign = foreign_entries(folder, ())
            what = "files, and is not a spol run folder"
    else:
        what = "files spol did not write" if outputs.mark else f"files `spol {outputs.command}` did not write"
    if foreign and not overwrite_foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        allow = (
            f", or pass {outputs.override} to write beside them (spol never deletes them)" if outputs.override else ""
        )
        raise FileExistsError(f"{folder} holds {what} ({shown}); choose an empty or new output folder{allow}")


def claim_folder(
    folder: Path, outputs: Outputs = PIPELINE_OUTPUTS, *, overwrite_foreign: bool = False, option: str = "--out"
) -> None:
    """Make `folder` the output folder of `outputs.command`, or check that it is; refuse what could lose a user's files.

    A missing or empty folder is created and marked (``run.json``, naming the command); a folder the
    command made is taken as it is (one an older spol made, `Outputs.proof`, gets the mark). Refused
    (`check_folder`): a folder inside a run folder, another command's, and one that holds names the
    command does not write, this last unless `overwrite_foreign` (spol then writes beside those
    files; it never deletes them).

    Raises:
        NotADirectoryError: `folder` is a file.
        FileNotFoundError: `folder` is a symbolic link to nothing (`spol.fileio.make_folder`).
        FileExistsError: foreign files, another command's folder or a run folder around it (names them and the fix).
        PermissionError: the folder cannot be created or written (the message names it).
    """
    folder = Path(folder)
    check_folder(folder, outputs, overwrite_foreign=overwrite_foreign, option=option)
    make_folder(folder)
    if not os.access(folder, os.W_OK):
        raise PermissionError(13, "permission denied", str(folder))
    if outputs.mark and not (folder / RUN_RECORD).is_file():
        write_json_atomic(folder / RUN_RECORD, {"created_by": "spol", "command": outputs.command})


@contextlib.contextmanager
def claimed_folder(
    folder: Path, outputs: Outputs, *, overwrite_foreign: bool = False, option: str = "--out"
) -> Iterator[Path]:
    """`claim_folder` for the block of a command's work; a folder it created goes again when the block fails first.

    A command whose inputs are refused after the claim (a dataset of one class, a missing file) so
    leaves nothing behind, not even the parent folders the claim made; a folder the block wrote into
    stays, to resume from.
    """
    folder = Path(folder)
    # The folder and the parents the claim makes, innermost first: a missing folder's parents may be missing too.
    created = [path for path in (folder, *folder.parents) if not (path.exists() or path.is_symlink())]
    claim_folder(folder, outputs, overwrite_foreign=overwrite_foreign, option=option)
    try:
        yield folder
    except BaseException:
        if created:
            with contextlib.suppress(OSError):  # a folder that is not empty stops the clean-up there
                if {entry.name for entry in folder.iterdir()} <= {RUN_RECORD}:
                    (folder / RUN_RECORD).unlink(missing_ok=True)
                    for path in created:
                        path.rmdir()
        raise


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run folder of spol's.

    One a command marked (`claim_folder`: a pipeline run, a training stage's, the pseudo masks',
    ``evaluate --out``), or any folder that `spol localize --run` reads (``localizer.json``).
    """
    if (folder / LOCALIZER_FILE).is_file():
        return True
    return made_by(folder) is not None


def enclosing_run(path: str | os.PathLike[str]) -> Path | None:
    """The run folder (`is_run_folder`) that `path` is or lies in, nearest first; None when there is none."""
    absolute = Path(os.path.abspath(path))
    return next((folder for folder in (absolute, *absolute.parents) if is_run_folder(folder)), None)


def refuse_run_folder(path: str | os.PathLike[str], *, option: str = "--out") -> None:
    """Refuse an output that would go into a run folder: no command writes there but the one that made it.

    Raises:
        FileExistsError: `path` is, or lies in, a run folder (the message names it and the fix).
    """
    run = enclosing_run(path)
    if run is not None:
        where = "is" if run == Path(os.path.abspath(path)) else "lies in"
        raise FileExistsError(
            f"{option} {path} {where} the spol run folder {run}; its files are the run's own: choose an "
            f"{option} outside it"
        )


def read_record(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path`, or None when there is none (an unreadable record counts as none)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two records, as ``key (recorded X, now Y)``."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        if recorded.get(key) != current.get(key):
            before, now = recorded.get(key, "nothing"), current.get(key, "nothing")
            if isinstance(before, dict | list) or isinstance(now, dict | list) or len(f"{before}{now}") > 120:
                out.append(key)
            else:
                out.append(f"{key} (recorded {before}, now {now})")
    return out


def refuse_changes(
    recorded: Any, current: Any, *, record: Path, what: str, changes: Sequence[str] | None = None
) -> None:
    """The one guard against reusing outputs made from other inputs: a no-op when `current` equals `recorded`.

    Args:
        recorded: what the outputs were made from, as read from `record`.
        current: what they would be made from now.
        record: the JSON file `recorded` comes from (named in the message; its folder holds the outputs).
        what: what differs, for the message (``"dataset"``, ``"training input"``, ...).
        changes: what changed, in words, when the caller knows better than the keys (`differences`).

    Raises:
        ValueError: they differ; the message names what changed, the record, and ``--force``.
    """
    if recorded == current:
        return
    changed = list(changes or [])
    if not changed and isinstance(recorded, dict) and isinstance(current, dict):
        changed = differences(recorded, current)
    detail = f": {'; '.join(changed)}" if changed else ""
    raise ValueError(
        f"{record.parent} was made from another {what} than now{detail} (see {record}); pass --force to redo it "
        "with this one, or choose another output folder"
    )


def check_record(path: Path, key: str | None, current: Any, *, what: str, force: bool) -> bool:
    """Compare `current` with ``record[key]`` (the whole record when `key` is None) of the JSON record at `path`.

    Returns:
        True when the record holds the same value (outputs made from it can be reused); False
        when there is no such value yet, or `force`.

    Raises:
        ValueError: the record holds another value and not `force` (`refuse_changes`).
    """
    record = read_record(path)
    recorded = record if key is None else (record or {}).get(key)
    if recorded is None or force:
        return False
    refuse_changes(recorded, current, record=path, what=what)
    return True


def update_record(path: Path, key: str, value: Any) -> None:
    """Set ``record[key] = value`` in the JSON record at `path` (created when missing), atomically."""
    record = read_record(path) or {}
    record[key] = value
    write_json_atomic(path, record)


def remove_owned(folder: Path, names: Iterable[str], patterns: Iterable[tuple[str, str]] = ()) -> list[Path]:
    """Delete the files spol owns in `folder`, and nothing else; returns what was deleted.

    Args:
        folder: the run (or stage) folder.
        names: file names directly in `folder`.
        patterns: ``(sub-folder, glob)`` pairs of files spol writes there (e.g. Lightning's
            ``("checkpoints", "epoch-*.ckpt")``); a sub-folder left empty is removed, one holding
            other files is kept.
    """
    removed = []
    for name in names:
        path = folder / name
        if path.is_file():
            path.unlink()
            removed.append(path)
    subfolders = set()
    for subfolder, pattern in patterns:
        subfolders.add(folder / subfolder)
        for path in (folder / subfolder).glob(pattern):
            if path.is_file():
                path.unlink()
                removed.append(path)
    for emptied in sorted(subfolders, key=lambda p: len(p.parts), reverse=True):
        if emptied.is_dir() and not any(emptied.iterdir()):
            emptied.rmdir()
    return removed


class FolderInUseError(RuntimeError):
    """Another spol process holds the run folder's lock."""


class RunLock:
    """``with RunLock(folder):`` — the folder is this process's until the block ends.

    The lock is ``folder/.spol.lock`` (pid and host). A lock whose process is gone (same host) is
    stale and taken over with a warning; one held by a live process, or from another host, is refused.

    Raises:
        FolderInUseError: another process holds the lock (names it and how to clear a wrong lock).
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._held = False

    def __enter__(self) -> RunLock:
        owner = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_record(self.path) or {}
                if not self._stale(holder):
                    raise FolderInUseError(
                        f"{self.path.parent} is in use by another spol process (pid {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')}); wait for it to finish, or delete {self.path} if no such "
                        "process runs"
                    ) from None
                logger.warning(
                    "%s was left by a process that is gone (pid %s); taking it over", self.path, holder.get("pid")
                )
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(owner, file)
            self._held = True
            return self
        raise FolderInUseError(f"could not take {self.path}; delete it if no spol process uses {self.path.parent}")

    @staticmethod
    def _stale(holder: dict[str, Any]) -> bool:
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return not holder  # an empty or unreadable lock file was never finished: stale
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, under another user
        return False

    def __exit__(self, *exc_info: object) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "DATASET_FILES",
    "INPUTS_FILE",
    "LAST_CHECKPOINT",
    "LOCALIZER_FILE",
    "LOCK_FILE",
    "METRICS_CSV",
    "METRICS_FILE",
    "MODEL_FILE",
    "PIPELINE_LOG",
    "PIPELINE_OUTPUTS",
    "REPORT_FILE",
    "RESULT_FILES",
    "RUN_ENTRIES",
    "RUN_RECORD",
    "SELECTION_FILE",
    "STAGE_ENTRIES",
    "STAGE_FOLDERS",
    "STAGE_LOG",
    "TENSORBOARD_DIR",
    "FolderInUseError",
    "Outputs",
    "RunLock",
    "check_folder",
    "check_record",
    "claim_folder",
    "claimed_folder",
    "differences",
    "enclosing_run",
    "foreign_entries",
    "made_by",
    "model_file",
    "is_run_folder",
    "read_record",
    "refuse_changes",
    "refuse_run_folder",
    "remove_owned",
    "stage_outputs",
    "update_record",
]
