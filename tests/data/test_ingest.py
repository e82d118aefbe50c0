import io
import zipfile

from PIL import Image

from xmr_core.data.ingest import MAX_FILE_BYTES, iter_inputs


def _png() -> bytes:
    buf = io.BytesIO()
    img = Image.new("L", (60, 30), 255)
    img.paste(0, (10, 10, 50, 20))
    img.save(buf, "PNG")
    return buf.getvalue()


def test_files_folders_and_zips(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(_png())
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    with zipfile.ZipFile(tmp_path / "a" / "more.zip", "w") as z:
        z.writestr("y.png", _png())
        z.writestr("../../evil.png", _png())  # path traversal name: read in memory only
        z.writestr("/abs/evil2.png", _png())
    errors: dict = {}
    got = dict(iter_inputs([tmp_path / "a", tmp_path / "missing.png"], errors))
    assert set(got) == {str(tmp_path / "a" / "x.png"), "more.zip:y.png", "more.zip:../../evil.png",
                        "more.zip:/abs/evil2.png"}
    assert not (tmp_path.parent / "evil.png").exists()
    assert errors == {str(tmp_path / "missing.png"): "no such file or folder"}


def test_zip_bomb_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.png", b"\0" * (MAX_FILE_BYTES + 10))
        z.writestr("ok.png", _png())
    errors: dict = {}
    got = dict(iter_inputs([tmp_path / "bomb.zip"], errors))
    assert list(got) == ["bomb.zip:ok.png"] and "zip bomb" in errors["bomb.zip:big.png"]


def test_not_a_zip(tmp_path):
    (tmp_path / "fake.zip").write_bytes(b"nope")
    errors: dict = {}
    assert list(iter_inputs([tmp_path / "fake.zip"], errors)) == []
    assert "not a readable zip" in errors[str(tmp_path / "fake.zip")]
