import gzip
import hashlib
import io
import pathlib
import shutil
import time
import urllib.error

import pytest
import torch

from dlviz import data


# --- the real files ---------------------------------------------------------------------------------------------

def test_mnist_test_split(data_dir):
    ds = data.mnist(train=False, root=data_dir)
    assert len(ds) == 10_000
    image, label = ds[0]
    assert label == 7
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_fashion_mnist_train_split(data_dir):
    ds = data.fashion_mnist(train=True, root=data_dir)
    assert len(ds) == 60_000
    assert ds.classes[ds[0][1]] == "Ankle boot"


def test_transform_is_used(data_dir):
    ds = data.mnist(train=False, root=data_dir, transform=lambda im: im.size)
    assert ds[0][0] == (28, 28)


def test_tensors_match_items(data_dir):
    ds = data.mnist(train=False, root=data_dir)
    x, y = data.tensors(ds, limit=50)
    assert x.shape == (50, 1, 28, 28) and y.shape == (50,) and y.dtype == torch.int64
    for i in (0, 17, 49):
        torch.testing.assert_close(x[i], ds[i][0])
        assert int(y[i]) == ds[i][1]


def test_tensors_rejects_other_datasets():
    with pytest.raises(TypeError, match="MNIST-style"):
        data.tensors([(torch.zeros(1), 0)])


def test_tiny_shakespeare(data_dir):
    text = data.tiny_shakespeare(root=data_dir)
    assert len(text) == 1_115_394
    assert text.startswith("First Citizen:")


def test_dlviz_data_environment_variable(data_dir, monkeypatch):
    monkeypatch.setenv("DLVIZ_DATA", str(data_dir))
    assert data.data_root() == data_dir
    assert len(data.mnist(train=False)) == 10_000


def test_root_argument_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DLVIZ_DATA", "/nonexistent")
    assert data.data_root(tmp_path) == tmp_path


@pytest.mark.parametrize("name", ["starry_night", "the_scream", "great_wave_off_kanagawa", "shipwreck_of_the_minotaur"])
def test_paintings(data_dir, name):
    image = data.sample_image(name, root=data_dir)
    assert image.mode == "RGB" and min(image.size) > 100


def test_skimage_photo_and_sizes():
    image = data.sample_image("astronaut")
    assert image.size == (512, 512) and image.mode == "RGB"
    assert data.sample_image("coffee", size=100).size == (150, 100)  # shorter side 100, aspect kept
    assert data.sample_image("chelsea", size=(64, 80)).size == (80, 64)  # (height, width)


def test_unknown_image_suggests_close_names():
    with pytest.raises(ValueError, match="starry_night"):
        data.sample_image("stary_night")


@pytest.mark.parametrize("size", [0, -3, (10,), (0, 5), True, 2.5, (1.5, 2), (True, 4), "64"])
def test_bad_sizes(size):
    with pytest.raises(ValueError, match="size"):
        data.sample_image("astronaut", size=size)


# --- offline, missing and corrupted files -----------------------------------------------------------------------

@pytest.fixture
def offline(monkeypatch):
    """No network: every connection attempt fails at once, as on a machine without DNS."""
    calls = []

    def refuse(url, timeout=None):
        calls.append((url, timeout))
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    return calls


def test_missing_files_offline_fail_fast_and_name_the_folder(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("DLVIZ_DATA", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(data.DataNotFoundError) as error:
        data.mnist()
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert str(tmp_path) in message and "DLVIZ_DATA" in message
    for name in ALL_IDX:  # every missing file is named, not only the first
        assert name + ".gz" in message
    assert offline and all(timeout == data.NETWORK_TIMEOUT_S for _, timeout in offline)
    assert not any(tmp_path.rglob("*.part"))


def test_really_offline_fails_within_seconds(tmp_path):
    """Without mocks: on a machine without network the real download attempt gives up within its timeout."""
    if _network_available():
        pytest.skip("this machine has a network; the mocked offline test above covers the logic")
    start = time.perf_counter()
    with pytest.raises(data.DataNotFoundError, match=str(tmp_path)):
        data.tiny_shakespeare(root=tmp_path)
    assert time.perf_counter() - start < 2 * data.NETWORK_TIMEOUT_S


def _network_available() -> bool:
    import socket
    try:
        socket.create_connection(("raw.githubusercontent.com", 443), timeout=2).close()
        return True
    except OSError:
        return False


def test_download_false_never_touches_the_network(tmp_path, offline):
    with pytest.raises(data.DataNotFoundError, match="download=False"):
        data.fashion_mnist(root=tmp_path, download=False)
    assert offline == []


def _copy_mnist(data_dir, tmp_path, names):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in names:
        shutil.copy(data_dir / "MNIST" / "raw" / name, raw / name)
    return raw


ALL_IDX = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def test_corrupted_file_is_reported_and_kept(data_dir, tmp_path, offline):
    raw = _copy_mnist(data_dir, tmp_path, ALL_IDX)
    victim = raw / "t10k-labels-idx1-ubyte"
    content = bytearray(victim.read_bytes())
    content[100] ^= 0xFF
    victim.write_bytes(bytes(content))
    with pytest.raises(data.ChecksumError) as error:
        data.mnist(train=False, root=tmp_path)
    assert str(victim) in str(error.value)
    assert victim.read_bytes() == bytes(content)  # the user's file is never deleted or changed


def test_compressed_files_are_verified_and_unpacked(data_dir, tmp_path, offline):
    _copy_mnist(data_dir, tmp_path, [n + ".gz" for n in ALL_IDX])
    ds = data.mnist(train=False, root=tmp_path)
    assert len(ds) == 10_000 and ds[0][1] == 7
    assert offline == []


def test_corrupted_compressed_file_is_not_unpacked(data_dir, tmp_path, offline):
    raw = _copy_mnist(data_dir, tmp_path, [n + ".gz" for n in ALL_IDX])
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not the labels"))
    with pytest.raises(data.ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        data.mnist(train=False, root=tmp_path)
    assert not (raw / "t10k-labels-idx1-ubyte").exists()


class _Response(io.BytesIO):
    """A urlopen() response that delivers ``payload`` and then, optionally, breaks off."""

    def __init__(self, payload, fail_after=None):
        super().__init__(payload)
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(size if self.fail_after is None else min(size if size > 0 else 1 << 30, 1000))

    def __exit__(self, *exc):
        self.close()


def test_interrupted_download_leaves_no_partial_file_and_a_retry_succeeds(data_dir, tmp_path, monkeypatch):
    payload = (data_dir / "tinyshakespeare" / "input.txt").read_bytes()
    attempts = []

    def broken(url, timeout=None):
        attempts.append(url)
        return _Response(payload, fail_after=50_000)

    monkeypatch.setattr(data.urllib.request, "urlopen", broken)
    with pytest.raises(data.DataNotFoundError, match="connection reset"):
        data.tiny_shakespeare(root=tmp_path)
    folder = tmp_path / "tinyshakespeare"
    assert attempts and not folder.exists()  # neither input.txt nor input.txt.part, nor the empty folder

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: _Response(payload))
    assert len(data.tiny_shakespeare(root=tmp_path)) == 1_115_394
    assert sorted(p.name for p in folder.iterdir()) == ["input.txt"]


def test_download_with_wrong_checksum_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: _Response(b"an impostor"))
    with pytest.raises(data.DataNotFoundError, match="does not match"):
        data.sample_image("starry_night", root=tmp_path)
    assert not (tmp_path / "images").exists()


def test_interrupted_unpack_leaves_no_partial_file(data_dir, tmp_path, monkeypatch, offline):
    raw = _copy_mnist(data_dir, tmp_path, [n + ".gz" for n in ALL_IDX])
    real_copy = shutil.copyfileobj

    def interrupted(src, dst, length=0):
        dst.write(src.read(1000))
        raise KeyboardInterrupt  # Ctrl-C in the middle of unpacking

    monkeypatch.setattr(data.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.mnist(train=False, root=tmp_path)
    assert not any(raw.glob("*.part")) and not any(raw.glob("*-ubyte"))
    monkeypatch.setattr(data.shutil, "copyfileobj", real_copy)
    assert len(data.mnist(train=False, root=tmp_path)) == 10_000


def test_unwritable_folder_gives_a_clear_error(data_dir, tmp_path, monkeypatch, offline):
    _copy_mnist(data_dir, tmp_path, [n + ".gz" for n in ALL_IDX])

    def refuse(path, mode="r", *args, **kwargs):
        if "w" in mode:
            raise PermissionError(f"read-only file system: {path}")
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(data, "open", refuse, raising=False)
    with pytest.raises(data.DataNotFoundError, match="not writable"):
        data.mnist(train=False, root=tmp_path)


def _published_md5() -> dict[str, str]:
    """path -> md5 from the shared data's SOURCES.txt, the record of where each original file came from."""
    sources = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets" / "SOURCES.txt"
    if not sources.exists():
        pytest.skip("../shared/datasets/SOURCES.txt is not beside this checkout")
    table = {}
    for line in sources.read_text().splitlines():
        if line and not line.startswith("#"):
            path, _size, md5 = line.split("\t")[:3]
            table[path] = md5
    return table


def test_checksums_in_the_table_are_the_published_ones():
    """Every MD5 the loaders check agrees with the record of the original files (and torchvision's own .gz list)."""
    from torchvision.datasets import MNIST, FashionMNIST
    published = _published_md5()
    for cls in (MNIST, FashionMNIST):
        for name, md5 in cls.resources:
            assert published[f"{cls.__name__}/raw/{name}"] == md5
    name, md5, _ = data._SHAKESPEARE
    assert published[f"tinyshakespeare/{name}"] == md5
    for filename, md5, _ in data.PAINTINGS.values():
        assert published[f"images/{filename}"] == md5


def test_unpacked_checksums_match_the_shared_files(data_dir):
    for dataset, table in data._IDX_MD5.items():
        for name, md5 in table.items():
            path = data_dir / dataset / "raw" / name
            if not path.exists():  # only the .gz is there: unpack it to check
                with gzip.open(path.with_name(name + ".gz"), "rb") as f:
                    assert hashlib.md5(f.read()).hexdigest() == md5, name
            else:
                assert hashlib.md5(path.read_bytes()).hexdigest() == md5, name


def test_train_val_split_is_a_fixed_disjoint_partition():
    x, y = torch.arange(100).float().view(100, 1), torch.arange(100)
    (xt, yt), (xv, yv) = data.train_val_split(x, y, val=20, seed=3)
    assert len(xv) == 20 and len(xt) == 80
    assert sorted(torch.cat([yt, yv]).tolist()) == list(range(100))
    assert torch.equal(xt.view(-1).long(), yt)
    (_, _), (_, yv2) = data.train_val_split(x, y, val=20, seed=3)
    assert torch.equal(yv, yv2)
    with pytest.raises(ValueError, match="between 1 and 99"):
        data.train_val_split(x, y, val=100)
    with pytest.raises(ValueError, match="same length"):
        data.train_val_split(x, y[:5])


# --- where the data folder is -----------------------------------------------------------------------------------

def _all_loaders():
    return [data.mnist, data.fashion_mnist, data.tiny_shakespeare, lambda: data.sample_image("starry_night")]


def test_dlviz_data_pointing_at_a_file_is_named(tmp_path, monkeypatch, offline):
    a_file = tmp_path / "datasets.tar"
    a_file.write_bytes(b"not a folder")
    monkeypatch.setenv("DLVIZ_DATA", str(a_file))
    for load in [data.data_root, *_all_loaders()]:
        with pytest.raises(data.DataNotFoundError, match=r"DLVIZ_DATA=.*datasets.tar' is a file, not a folder"):
            load()
    assert a_file.read_bytes() == b"not a folder" and sorted(tmp_path.iterdir()) == [a_file]
    assert offline == []


@pytest.mark.parametrize("how", ["environment", "root"])
def test_a_mistyped_folder_is_not_created(tmp_path, monkeypatch, offline, how):
    mistyped = tmp_path / "datsets"
    if how == "environment":
        monkeypatch.setenv("DLVIZ_DATA", str(mistyped))
        loaders = _all_loaders()
    else:
        loaders = [lambda: data.mnist(root=mistyped), lambda: data.tiny_shakespeare(root=mistyped),
                   lambda: data.sample_image("the_scream", root=mistyped)]
    for load in loaders:
        with pytest.raises(data.DataNotFoundError, match="datsets' does not exist.*mkdir -p"):
            load()
    assert list(tmp_path.iterdir()) == [] and offline == []


def test_an_offline_failure_leaves_no_empty_folders(tmp_path, offline):
    painting = lambda root: data.sample_image("the_scream", root=root)  # noqa: E731
    for load in (data.mnist, data.fashion_mnist, data.tiny_shakespeare, painting):
        with pytest.raises(data.DataNotFoundError, match="could not be downloaded"):
            load(root=tmp_path)
    assert offline and list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_of_a_dataset_folder_is_named(tmp_path, offline):
    (tmp_path / "tinyshakespeare").write_text("in the way")
    with pytest.raises(data.DataNotFoundError, match="a file is in the way"):
        data.tiny_shakespeare(root=tmp_path)


def test_the_default_folder_is_created_by_a_download_and_removed_after_a_failed_one(data_dir, tmp_path, monkeypatch,
                                                                                     offline):
    default = tmp_path / "cache" / "dlviz"
    monkeypatch.delenv("DLVIZ_DATA", raising=False)
    monkeypatch.setattr(data, "_default_root", lambda: default)
    with pytest.raises(data.DataNotFoundError, match="network is unreachable"):
        data.tiny_shakespeare()
    assert list(tmp_path.iterdir()) == []  # neither cache/dlviz/tinyshakespeare nor cache/ left behind

    payload = (data_dir / "tinyshakespeare" / "input.txt").read_bytes()
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: _Response(payload))
    assert len(data.tiny_shakespeare()) == 1_115_394
    assert (default / "tinyshakespeare" / "input.txt").is_file()


# --- tensors ------------------------------------------------------------------------------------------------------

def _fake_mnist(n=6):
    from types import SimpleNamespace
    return SimpleNamespace(data=torch.arange(n * 4, dtype=torch.uint8).view(n, 2, 2), targets=torch.arange(n))


@pytest.mark.parametrize("limit", [-1, 0, 1.5, True, "3"])
def test_tensors_rejects_a_bad_limit(limit):
    with pytest.raises(ValueError, match="limit must be a positive int"):
        data.tensors(_fake_mnist(), limit=limit)


def test_tensors_limit_keeps_the_first_items():
    x, y = data.tensors(_fake_mnist(), limit=4)
    assert x.shape == (4, 1, 2, 2) and y.tolist() == [0, 1, 2, 3]
    assert len(data.tensors(_fake_mnist(), limit=100)[0]) == 6
    assert len(data.tensors(_fake_mnist())[0]) == 6
