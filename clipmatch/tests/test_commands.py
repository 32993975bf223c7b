"""clip_info, clip_test and clip_batch_test against a real tiny checkpoint."""

import csv
import json

import pytest
from django.core.management import CommandError, call_command

from conftest import png_bytes

KEYS = {"n", "roc_auc", "pr_auc", "threshold", "accuracy", "precision", "recall", "f1"}


@pytest.fixture
def pairs_csv(tmp_path):
    (tmp_path / "img").mkdir()
    rows = []
    for n in range(6):
        (tmp_path / "img" / f"{n}.png").write_bytes(png_bytes(seed=n))
        rows.append((f"img/{n}.png", f"product number {n}", n % 2))
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_path", "text", "label"])
        writer.writerows(rows)
    return path


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), verbosity=0)
    return out.getvalue()


@pytest.mark.django_db
def test_clip_info_reports_model_version_device_and_thresholds(
    tiny_clip_dir, use_model
):
    use_model(tiny_clip_dir)

    info = json.loads(run("clip_info", "--json"))

    assert info["model"] == str(tiny_clip_dir)
    assert info["version"].startswith("tiny-clip-0@")
    assert info["device"] == "cpu"
    assert info["family"] == "CLIP"
    assert info["context_length"] == 16
    assert info["thresholds"]["title"] == {"pass": 0.5, "hold": -0.5}


def test_clip_info_names_a_missing_model(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("clip_info", "--model", str(tmp_path / "gone"))


def test_clip_test_prints_similarity_and_band(tiny_clip_dir, tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(png_bytes())

    result = json.loads(
        run(
            "clip_test",
            "--image",
            str(image),
            "--text",
            "red",
            "--model",
            str(tiny_clip_dir),
            "--json",
        )
    )

    assert -1.0 <= result["similarity"] <= 1.0
    assert result["band"] == "review"  # the tiny model's thresholds are +-0.5
    assert result["text_windows"] == 1


def test_clip_test_explains_an_unreadable_image(tiny_clip_dir, tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(b"<html>not an image</html>")

    with pytest.raises(CommandError, match="x.jpg: Unreadable image"):
        run(
            "clip_test",
            "--image",
            str(image),
            "--text",
            "red",
            "--model",
            str(tiny_clip_dir),
        )


def test_clip_batch_test_json_has_the_documented_keys(
    tiny_clip_dir, pairs_csv, tmp_path
):
    output = tmp_path / "out.csv"

    report = json.loads(
        run(
            "clip_batch_test",
            "--csv",
            str(pairs_csv),
            "--model",
            str(tiny_clip_dir),
            "--json",
            "--output",
            str(output),
        )
    )

    assert KEYS <= set(report)
    assert report["n"] == 6
    assert report["threshold"] == 0.5
    assert 0.0 <= report["roc_auc"] <= 1.0
    rows = list(csv.DictReader(output.open()))
    assert [r["image_path"] for r in rows] == [f"img/{n}.png" for n in range(6)]
    assert all(r["similarity"] for r in rows)


def test_clip_batch_test_names_the_row_with_a_bad_label(tiny_clip_dir, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image_path,text,label\na.png,red,1\nb.png,blue,yes\n")

    with pytest.raises(CommandError, match="row 3: label must be 0 or 1, not 'yes'"):
        run("clip_batch_test", "--csv", str(path), "--model", str(tiny_clip_dir))


def test_clip_batch_test_names_missing_columns(tiny_clip_dir, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image,caption\na.png,red\n")

    with pytest.raises(CommandError, match="missing column"):
        run("clip_batch_test", "--csv", str(path), "--model", str(tiny_clip_dir))


def test_clip_batch_test_skips_and_reports_unreadable_images(
    tiny_clip_dir, pairs_csv, capsys
):
    (pairs_csv.parent / "img" / "0.png").write_bytes(b"broken")
    from io import StringIO

    err = StringIO()
    out = StringIO()
    call_command(
        "clip_batch_test",
        "--csv",
        str(pairs_csv),
        "--model",
        str(tiny_clip_dir),
        "--json",
        stdout=out,
        stderr=err,
        verbosity=0,
    )

    report = json.loads(out.getvalue())
    assert report["n"] == 5
    assert report["unreadable"] == 1
    assert "row 2: Unreadable image" in err.getvalue()
