"""Run directories and atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from vaelab.config import Config, load_config, save_config
from vaelab.rundir import (
    RunDirError,
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    create_run_dir,
    default_run_path,
    open_run_dir,
)


def test_create_refuses_to_overwrite_unless_asked(tmp_path):
    run = create_run_dir(tmp_path / "run")
    assert run.checkpoints.is_dir() and run.plots.is_dir()
    save_config(Config(seed=3), run.config)
    (run.path / "train_log.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="already exists.*--resume.*--overwrite"):
        create_run_dir(run.path)
    assert (run.path / "train_log.jsonl").exists()  # nothing was lost
    again = create_run_dir(run.path, overwrite=True)
    assert not (again.path / "train_log.jsonl").exists()


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError, match="does not look like a vaelab run"):
        create_run_dir(folder, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "precious"


def test_open_run_dir_errors(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        open_run_dir(tmp_path / "nope")
    with pytest.raises(RunDirError, match="has no config.yaml"):
        open_run_dir(tmp_path)
    run = create_run_dir(tmp_path / "r")
    save_config(Config(), run.config)
    assert open_run_dir(run.path).config == run.config
    assert load_config(run.config) == Config()


def test_default_run_path_is_unique(tmp_path):
    first = default_run_path("demo", tmp_path)
    first.mkdir()
    second = default_run_path("demo", tmp_path)
    assert first != second and second.name.startswith("demo-")


def test_atomic_write_keeps_old_content_on_error(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"mig": 0.5})
    with pytest.raises(RuntimeError), atomic_open(path, "w") as handle:
        handle.write('{"mig": ')
        raise RuntimeError("crash in the middle of a write")
    assert json.loads(path.read_text()) == {"mig": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left
    atomic_write_text(path, "new")
    assert path.read_text() == "new"


def test_sigkill_during_write_leaves_the_previous_file(tmp_path):
    """A process killed between writing and renaming leaves the old file intact."""
    path = tmp_path / "state.txt"
    atomic_write_text(path, "complete old content")
    script = textwrap.dedent(f"""
        import os, signal
        from vaelab.rundir import atomic_open
        with atomic_open({str(path)!r}, "w") as handle:
            handle.write("half of the new")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -9
    assert path.read_text() == "complete old content"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state.txt"]
    assert all(name.startswith(".state.txt.tmp-") for name in leftovers)
    assert os.path.getsize(path) == len("complete old content")
