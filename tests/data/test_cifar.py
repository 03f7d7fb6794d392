"""CIFAR-10/100 loaders on small files in the official pickle format, written here; malicious and damaged files."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from wattless.data import _cifar, load_dataset
from wattless.errors import DataError

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with every str and bytes written as a Python 2 ``str`` (BINSTRING), as cPickle wrote CIFAR."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_dumps(obj) -> bytes:
    """``obj`` pickled as Python 2 and numpy 1.x did, module name ``numpy.core.multiarray`` included."""
    stream = io.BytesIO()
    Py2Pickler(stream, protocol=2).dump(obj)
    return stream.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batch(rng, n, label_key, labels):
    return {
        b"batch_label": b"a batch",
        label_key: [int(v) for v in labels],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def write_cifar10(folder, *, per_batch=20, archive=False, dumps=py2_dumps, seed=0):
    """The six CIFAR-10 pickles (``per_batch`` images each, labels cycling 0..9) in ``folder``; returns them."""
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _batch(rng, per_batch, b"labels", np.arange(per_batch) % 10) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, per_batch, b"labels", (np.arange(per_batch) * 3) % 10)
    batches["batches.meta"] = {b"label_names": CIFAR10_NAMES, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    _write(folder, _cifar.CIFAR10, {file: dumps(obj) for file, obj in batches.items()}, archive)
    return batches


def write_cifar100(folder, *, n_train=1000, n_test=200, archive=False, seed=0):
    rng = np.random.default_rng(seed)
    fine_train, fine_test = np.arange(n_train) % 100, (np.arange(n_test) * 7) % 100
    files = {}
    for file, fine in (("train", fine_train), ("test", fine_test)):
        files[file] = _batch(rng, len(fine), b"fine_labels", fine)
        files[file][b"coarse_labels"] = [int(v) // 5 for v in fine]
    files["meta"] = {
        b"fine_label_names": [b"fine_%d" % i for i in range(100)],
        b"coarse_label_names": [b"coarse_%d" % i for i in range(20)],
    }
    _write(folder, _cifar.CIFAR100, {file: py2_dumps(obj) for file, obj in files.items()}, archive)
    return files


def _write(folder, layout, payloads, archive):
    folder.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(folder / layout.archive, "w:gz") as tar:
            for file, raw in payloads.items():
                info = tarfile.TarInfo(f"{layout.folder}/{file}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
        return
    (folder / layout.folder).mkdir(exist_ok=True)
    for file, raw in payloads.items():
        (folder / layout.folder / file).write_bytes(raw)


@pytest.fixture
def trust_fake_cifar(monkeypatch):
    """Skip the md5 checks: synthetic files cannot match the published sums."""
    monkeypatch.setitem(_cifar.MD5, "cifar10", {})
    monkeypatch.setitem(_cifar.MD5, "cifar100", {})


@pytest.fixture
def root(isolated_lookup, trust_fake_cifar):
    return isolated_lookup / "arg"


def _pixels(batch):
    return batch[b"data"].reshape(-1, 3, 32, 32)


def test_shapes_labels_and_the_official_test_batch(root):
    batches = write_cifar10(root)
    data = load_dataset("cifar10", data_dir=str(root))
    assert data.X_train.shape == (90, 3, 32, 32) and data.X_val.shape == (10, 3, 32, 32)
    assert data.X_test.shape == (20, 3, 32, 32) and data.X_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.classes == [n.decode() for n in CIFAR10_NAMES]
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][b"labels"])
    assert np.bincount(data.y_val).tolist() == [1] * 10  # stratified 10% of the train batches
    assert data.input_shape == (3, 32, 32) and data.num_outputs == 10
    json.dumps(data.describe())


def test_channels_are_standardized_with_train_statistics_only(root):
    batches = write_cifar10(root)
    data = load_dataset("cifar10", data_dir=str(root))
    prep = data.preprocessing
    assert prep["kind"] == "standardize" and len(prep["mean"]) == len(prep["std"]) == 3
    np.testing.assert_allclose(data.X_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=(0, 2, 3)), 1, atol=1e-4)
    mean, std = np.array(prep["mean"])[:, None, None], np.array(prep["std"])[:, None, None]
    pixels = (data.X_test * std + mean) / prep["pixel_scale"]
    np.testing.assert_allclose(pixels, _pixels(batches["test_batch"]), atol=1e-3)  # channel order R, G, B kept
    all_train = np.concatenate([_pixels(batches[f"data_batch_{i}"]) for i in range(1, 6)]) / 255
    assert prep["mean"][0] != pytest.approx(all_train[:, 0].mean(), abs=1e-9)  # not the mean of train + val


def test_the_archive_gives_the_same_data_as_the_extracted_folder(isolated_lookup, trust_fake_cifar):
    write_cifar10(isolated_lookup / "folder")
    write_cifar10(isolated_lookup / "archive", archive=True)
    from_folder = load_dataset("cifar10", data_dir=str(isolated_lookup / "folder"))
    from_archive = load_dataset("cifar10", data_dir=str(isolated_lookup / "archive"))
    assert from_archive.source.endswith(_cifar.CIFAR10.archive)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(from_folder.split(split)[0], from_archive.split(split)[0])
        np.testing.assert_array_equal(from_folder.split(split)[1], from_archive.split(split)[1])


def test_found_through_the_lookup_order_and_the_extracted_folder_itself(isolated_lookup, trust_fake_cifar, monkeypatch):
    write_cifar10(isolated_lookup / "env" / "cifar10", archive=True)
    monkeypatch.setenv("WATTLESS_DATA", str(isolated_lookup / "env"))
    assert load_dataset("cifar10").source == str(isolated_lookup / "env" / "cifar10" / _cifar.CIFAR10.archive)
    write_cifar10(isolated_lookup / "torchvision-root")
    inner = isolated_lookup / "torchvision-root" / _cifar.CIFAR10.folder
    assert load_dataset("cifar10", data_dir=str(inner)).source == str(inner)


def test_protocol_4_pickles_written_by_python_3_load_too(root):
    batches = write_cifar10(root, dumps=lambda obj: pickle.dumps(obj, protocol=4))
    data = load_dataset("cifar10", data_dir=str(root))
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][b"labels"])


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_fine_by_default_coarse_on_request(root, archive):
    files = write_cifar100(root, archive=archive)
    fine = load_dataset("cifar100", data_dir=str(root))
    coarse = load_dataset("cifar100-coarse", data_dir=str(root))
    assert fine.num_outputs == 100 and fine.classes[:2] == ["fine_0", "fine_1"]
    assert coarse.num_outputs == 20 and coarse.name == "cifar100-coarse"
    np.testing.assert_array_equal(fine.y_test, files["test"][b"fine_labels"])
    np.testing.assert_array_equal(coarse.y_test, files["test"][b"coarse_labels"])
    assert fine.X_train.shape == (900, 3, 32, 32) and np.bincount(fine.y_val).tolist() == [1] * 100
    with pytest.raises(DataError, match="unknown CIFAR-100 labels 'medium'"):
        _cifar.load_cifar100(data_dir=str(root), labels="medium")


class RunsAShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class CallsEval:
    def __reduce__(self):
        return eval, ("1 + 1",)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("archive", [False, True])
def test_a_malicious_pickle_is_refused_without_running_anything(root, tmp_path, protocol, archive):
    sentinel = tmp_path / "pwned"
    write_cifar10(root)
    payloads = {f: (root / _cifar.CIFAR10.folder / f).read_bytes() for f in _cifar.CIFAR10.files}
    payloads["data_batch_3"] = pickle.dumps(RunsAShellCommand(f"touch {sentinel}"), protocol=protocol)
    _write(root, _cifar.CIFAR10, payloads, archive)
    if archive:  # drop the clean extracted copy, which would be read before the archive
        for file in _cifar.CIFAR10.files:
            (root / _cifar.CIFAR10.folder / file).unlink()
    with pytest.raises(DataError, match=r"data_batch_3: refused to unpickle (posix|nt|os)\.system") as error:
        load_dataset("cifar10", data_dir=str(root))
    member = f"{root / _cifar.CIFAR10.archive}:cifar-10-batches-py/" if archive else f"{root / _cifar.CIFAR10.folder}/"
    assert str(error.value).startswith(member + "data_batch_3: ")
    assert not sentinel.exists()
    assert "\n" not in str(error.value) and "not a genuine CIFAR file" in str(error.value)


@pytest.mark.parametrize("payload", [CallsEval(), np.int64(3), pickle.loads], ids=["eval", "numpy-scalar", "function"])
def test_any_global_beyond_array_reconstruction_is_refused(payload):
    with pytest.raises(DataError, match="origin: refused to unpickle"):
        _cifar.read_pickle(pickle.dumps({b"x": payload}, protocol=2), "origin")


def _replace(root, file, raw):
    (root / _cifar.CIFAR10.folder / file).write_bytes(raw)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "data_batch_2: not a readable CIFAR pickle"),
        (lambda raw: b"", "data_batch_2: not a readable CIFAR pickle"),
        (lambda raw: b"\x00garbage" * 10, "data_batch_2: not a readable CIFAR pickle"),
        (lambda raw: py2_dumps([1, 2, 3]), r"data_batch_2: expected a dict with b'data' and b'labels'"),
        (lambda raw: py2_dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}), r"shape \(n, 3072\)"),
        (lambda raw: py2_dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "should be 2 integer labels"),
        (lambda raw: py2_dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "label 10 is out of range"),
    ],
    ids=["truncated", "empty", "garbage", "not-a-dict", "wrong-width", "label-count", "label-range"],
)
def test_a_damaged_batch_gives_one_clear_error_naming_it(root, damage, message):
    write_cifar10(root)
    _replace(root, "data_batch_2", damage((root / _cifar.CIFAR10.folder / "data_batch_2").read_bytes()))
    with pytest.raises(DataError, match=message) as error:
        load_dataset("cifar10", data_dir=str(root))
    assert "\n" not in str(error.value)


def test_a_meta_file_without_class_names_is_named(root):
    write_cifar10(root)
    _replace(root, "batches.meta", py2_dumps({b"num_vis": 3072}))
    with pytest.raises(DataError, match=r"batches.meta: no list of class names under b'label_names'"):
        load_dataset("cifar10", data_dir=str(root))


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_archive_is_named(root, cut):
    write_cifar10(root, archive=True)
    path = root / _cifar.CIFAR10.archive
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(DataError, match=f"{_cifar.CIFAR10.archive}: not a readable .tar.gz archive") as error:
        load_dataset("cifar10", data_dir=str(root))
    assert "\n" not in str(error.value)


def test_an_archive_missing_a_batch_is_named(root):
    write_cifar10(root)
    payloads = {f: (root / _cifar.CIFAR10.folder / f).read_bytes() for f in _cifar.CIFAR10.files if f != "test_batch"}
    (root / _cifar.CIFAR10.folder / "test_batch").unlink()
    _write(root, _cifar.CIFAR10, payloads, archive=True)
    with pytest.raises(DataError, match="the archive lacks cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", data_dir=str(root))


def test_fake_files_fail_the_published_md5_sums(isolated_lookup):
    write_cifar10(isolated_lookup / "archive", archive=True)
    with pytest.raises(DataError, match="md5 .* does not match the published c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", data_dir=str(isolated_lookup / "archive"))
    write_cifar10(isolated_lookup / "folder")
    with pytest.raises(DataError, match="data_batch_1: md5 .* the published c99cafc152244af753f735de768cd75f"):
        load_dataset("cifar10", data_dir=str(isolated_lookup / "folder"))


@pytest.mark.parametrize(
    ("name", "archive"), [("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")]
)
def test_missing_files_error_names_the_files_and_where_to_put_them(isolated_lookup, name, archive):
    with pytest.raises(DataError, match=f"'{name}' not found.*WATTLESS_DATA.*--data-dir") as error:
        load_dataset(name)
    message = str(error.value)
    assert archive in message and _cifar.BASE_URL + archive in message and "\n" not in message
    assert str(isolated_lookup / "cache" / name) in message


def test_the_malicious_payload_does_run_under_plain_pickle(tmp_path):
    """Control for the refusal test: the same bytes do create the sentinel when unpickled without restriction."""
    sentinel = tmp_path / "pwned"
    pickle.loads(pickle.dumps(RunsAShellCommand(f"touch {sentinel}"), protocol=2))
    assert sentinel.exists()


def test_resnet18_trains_prunes_half_its_channels_and_exports_on_cifar_format_data(root, tmp_path):
    """The issue's end-to-end check on a small synthetic set in the official format (real CIFAR: see README)."""
    import onnxruntime as ort

    import wattless
    from wattless.api import apply_steps
    from wattless.deploy import export_onnx
    from wattless.io import deployable_module

    write_cifar10(root, per_batch=8)
    data = wattless.load_dataset("cifar10", data_dir=str(root))
    model = wattless.train("resnet18", data, model_kwargs={"width": 0.125}, epochs=1, batch_size=16, seed=0)
    pruned = apply_steps(model, data, ["prune.structured:ratio=0.5,finetune_epochs=1"])
    params = [sum(p.numel() for p in m.module.parameters()) for m in (model, pruned)]
    assert params[1] < 0.4 * params[0]  # half the channels of most layers: about a quarter of the weights
    wattless.save(pruned, tmp_path / "r.wlz")
    loaded = wattless.load(tmp_path / "r.wlz")
    path = export_onnx(deployable_module(loaded.module).eval(), data.input_shape, tmp_path / "r.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: data.X_test[:4]})[0]
    assert outputs.shape == (4, 10)
