"""Reading Meta-Album folders: happy path, tolerated quirks, and each error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metagen.datasets import (
    DatasetError,
    DatasetNotFoundError,
    InfoError,
    LabelsError,
    LayoutError,
    MetaAlbumDataset,
    MissingImageError,
    SplitError,
    UnlabeledImageError,
    UnreadableImageError,
    load_dataset,
    split_indices,
)
from tests.datasets.conftest import write_metaalbum


def test_happy_path(tiny: Path) -> None:
    ds = load_dataset(tiny)
    assert isinstance(ds, MetaAlbumDataset)
    assert ds.name == "tiny" and ds.root == tiny and len(ds) == 30
    assert ds.classes == ("ant", "bee", "cat")  # sorted
    assert [p.name for p in ds.files] == sorted(p.name for p in (tiny / "images").iterdir())
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (30,)
    assert ds.class_counts().tolist() == [10, 10, 10]
    # im000..im009 are "cat" (index 2), then "ant", then "bee"
    assert ds.labels[:10].tolist() == [2] * 10 and ds.labels[10:20].tolist() == [0] * 10
    img = ds.open_image(0)
    assert img.mode == "RGB" and img.size == (20, 20)
    assert ds.info["dataset_name"] == "tiny"


def test_name_defaults_to_folder(tmp_path: Path) -> None:
    root = tmp_path / "MY_SET"
    write_metaalbum(root, {"a": 5, "b": 5})
    (root / "info.json").write_text("{}")
    assert load_dataset(root).name == "MY_SET"


def test_split_and_meta_features(tiny: Path) -> None:
    ds = load_dataset(tiny)
    split = ds.split()
    ref = split_indices(30, 93)
    assert np.array_equal(split.train, ref.train) and np.array_equal(split.val, ref.val)
    assert ds.meta_features(split) == {"train_size": 18, "num_classes": 3, "resolution": 20, "channels": 3}
    assert ds.meta_features() == ds.meta_features(split)


def test_meta_features_read_resolution_from_image_not_info(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_metaalbum(root, {"a": 10, "b": 10}, size=(24, 16), info={"resolution": 128}, mode="L")
    ds = load_dataset(root)
    assert ds.meta_features()["resolution"] == 24  # larger side of the first image
    assert ds.meta_features()["channels"] == 3  # grey files are opened as RGB
    assert ds.open_image(3).mode == "RGB"


def test_column_names_from_info_json(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_metaalbum(root, {"x": 5, "y": 5}, columns=("path", "label"),
                    info={"image_column_name": "path", "category_column_name": "label"})  # fmt: skip
    assert load_dataset(root).classes == ("x", "y")


def test_quirks_trailing_comma_bom_blanks_uppercase_ext_hidden_files(tmp_path: Path) -> None:
    root = tmp_path / "d"
    rows = write_metaalbum(root, {"bee": 5, "wasp": 5}, ext=".JPG")
    (root / "info.json").write_text('{\n  "dataset_name" : "quirky",\n  "total_categories" : 2,\n}\n')
    lines = ["FILE_NAME, CATEGORY, SUPER_CATEGORY"] + [f"{n},  {c} , NAN" for n, c in rows]
    (root / "labels.csv").write_text("\ufeff" + "\n".join(lines) + "\n\n", encoding="utf-8")
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    (root / "images" / "notes.txt").write_text("ignored")
    ds = load_dataset(root)
    assert ds.name == "quirky" and ds.classes == ("bee", "wasp") and len(ds) == 10


def test_images_beside_labels_csv(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_metaalbum(root, {"a": 5, "b": 5})
    for p in (root / "images").iterdir():
        p.rename(root / p.name)
    (root / "images").rmdir()
    ds = load_dataset(root)
    assert len(ds) == 10 and ds.files[0].parent == root


def test_total_categories_mismatch_warns(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_metaalbum(root, {"a": 5, "b": 5}, info={"total_categories": 3})
    with pytest.warns(UserWarning, match="total_categories=3"):
        load_dataset(root)


# --- errors -------------------------------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist") as e:
        load_dataset(tmp_path / "nope")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, DatasetError)


def test_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(LayoutError, match="is a file"):
        load_dataset(tmp_path / "f")


@pytest.mark.parametrize(("victim", "message"), [("info.json", "info.json is missing"),
                                                 ("labels.csv", "labels.csv is missing")])  # fmt: skip
def test_missing_metadata_file(tiny: Path, victim: str, message: str) -> None:
    (tiny / victim).unlink()
    with pytest.raises(LayoutError, match=message):
        load_dataset(tiny)


def test_folder_of_datasets(tmp_path: Path) -> None:
    write_metaalbum(tmp_path / "suite" / "A", {"a": 5, "b": 5})
    write_metaalbum(tmp_path / "suite" / "B", {"a": 5, "b": 5})
    with pytest.raises(LayoutError, match=r"folder of datasets.*subfolders: A, B"):
        load_dataset(tmp_path / "suite")


def test_no_images_folder(tiny: Path) -> None:
    for p in (tiny / "images").iterdir():
        p.unlink()
    (tiny / "images").rmdir()
    with pytest.raises(LayoutError, match="no images/ folder"):
        load_dataset(tiny)


@pytest.mark.parametrize(("text", "message"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_bad_info_json(tiny: Path, text: str, message: str) -> None:
    (tiny / "info.json").write_text(text)
    with pytest.raises(InfoError, match=message):
        load_dataset(tiny)


def test_info_json_column_name_not_a_string(tiny: Path) -> None:
    (tiny / "info.json").write_text(json.dumps({"image_column_name": 3}))
    with pytest.raises(InfoError, match="image_column_name"):
        load_dataset(tiny)


def test_labels_without_columns(tiny: Path) -> None:
    (tiny / "labels.csv").write_text("name,cls\nim000.png,cat\n")
    with pytest.raises(LabelsError, match=r"no column\(s\) \['FILE_NAME', 'CATEGORY'\].*image_column_name"):
        load_dataset(tiny)


def test_labels_column_named_in_info_but_absent(tiny: Path) -> None:
    (tiny / "info.json").write_text(json.dumps({"category_column_name": "LABEL"}))
    with pytest.raises(LabelsError, match=r"\['LABEL'\]"):
        load_dataset(tiny)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "is empty"),
        ("FILE_NAME,CATEGORY\n", "no rows"),
        ("FILE_NAME,CATEGORY\nim000.png,\n", "line 2: empty"),
        ("FILE_NAME,CATEGORY\nim000.png,cat\nim000.png,cat\n", "listed twice"),
        ("FILE_NAME,CATEGORY\nsub/im000.png,cat\n", "bare file name"),
        ("FILE_NAME,CATEGORY\nim000.gif,cat\n", "not PNG/JPEG"),
    ],
)
def test_bad_labels_rows(tiny: Path, body: str, message: str) -> None:
    (tiny / "labels.csv").write_text(body)
    with pytest.raises(LabelsError, match=message):
        load_dataset(tiny)


def test_missing_image(tiny: Path) -> None:
    (tiny / "images" / "im004.png").unlink()
    with pytest.raises(MissingImageError, match=r"1 image\(s\) listed .* im004\.png"):
        load_dataset(tiny)


def test_unlabeled_image(tiny: Path) -> None:
    Image.new("RGB", (20, 20)).save(tiny / "images" / "extra.png")
    with pytest.raises(UnlabeledImageError, match=r"extra\.png"):
        load_dataset(tiny)


def test_empty_image_file(tiny: Path) -> None:
    (tiny / "images" / "im002.png").write_bytes(b"")
    with pytest.raises(UnreadableImageError, match=r"im002\.png"):
        load_dataset(tiny)


def test_corrupt_image(tiny: Path) -> None:
    (tiny / "images" / "im000.png").write_bytes(b"this is not a png at all")
    ds = load_dataset(tiny)  # cheap checks pass
    with pytest.raises(UnreadableImageError, match=r"im000\.png.*Replace the file"):
        ds.open_image(0)
    with pytest.raises(UnreadableImageError, match=r"im000\.png"):
        ds.meta_features()  # reads the first image's header
    with pytest.raises(UnreadableImageError, match=r"im000\.png"):
        load_dataset(tiny, verify=True)


def test_truncated_image(tiny: Path) -> None:
    path = tiny / "images" / "im005.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(UnreadableImageError, match=r"im005\.png"):
        load_dataset(tiny).verify()


def test_class_without_training_images(tmp_path: Path) -> None:
    root = tmp_path / "d"
    rows = write_metaalbum(root, {"big": 21})
    val_index = int(split_indices(21).val[0])  # give the image that lands in val a class of its own
    lines = ["FILE_NAME,CATEGORY"] + [f"{n},{'lonely' if i == val_index else c}" for i, (n, c) in enumerate(rows)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(root)
    assert ds.classes == ("big", "lonely")
    with pytest.raises(SplitError, match=r"'lonely' \(0 of 1\).*add images"):
        ds.split()
    with pytest.raises(SplitError, match="lonely"):
        ds.meta_features()


def test_min_train_per_class(tiny: Path) -> None:
    ds = load_dataset(tiny)
    ds.split(min_train_per_class=3)
    with pytest.raises(SplitError, match="fewer than 11"):
        ds.split(min_train_per_class=11)


def test_too_few_images_for_a_split(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_metaalbum(root, {"a": 2, "b": 2})
    with pytest.raises(SplitError, match=r"4 images: .* leaves \['val'\] empty"):
        load_dataset(root).split()


def test_a_single_class_dataset_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_metaalbum(root, {"only": 10})
    with pytest.raises(LabelsError, match=r"1 class\(es\).*needs at least 2"):
        load_dataset(root)


def test_fingerprint_names_the_content_not_the_folder(tiny: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    assert load_dataset(copy).fingerprint() == load_dataset(tiny).fingerprint()
    image = sorted((copy / "images").iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0")  # one byte more in one image
    assert load_dataset(copy).fingerprint() != load_dataset(tiny).fingerprint()


def test_tolerates_is_read_from_info_json_with_imagenet_defaults(tiny: Path) -> None:
    ds = load_dataset(tiny)
    assert ds.tolerates().hflip and ds.tolerates().min_crop_scale == 0.08  # real Meta-Album: anything goes
    info = json.loads((tiny / "info.json").read_text())
    (tiny / "info.json").write_text(json.dumps({**info, "tolerates": {"hflip": False, "min_crop_scale": 0.5}}))
    t = load_dataset(tiny).tolerates()
    assert (t.hflip, t.min_crop_scale, t.color_jitter) == (False, 0.5, 0.4)
    (tiny / "info.json").write_text(json.dumps({**info, "tolerates": {"flip": 1}}))
    with pytest.raises(InfoError, match="'tolerates' must be an object"):
        load_dataset(tiny).tolerates()
