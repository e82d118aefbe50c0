import subprocess
import sys

import numpy as np
import pytest
from helpers import SMALL
from PIL import Image

from xmr_core.cli import main


def test_render_contact_sheet(tmp_path, fonts_ready):
    out = tmp_path / "sheet.png"
    assert main(["render", "--words", "猫", "cat", "gato", "--styles", "4", "--out", str(out)]) == 0
    img = Image.open(out)
    assert img.size == (4 * 200, 3 * 80)
    # each cell holds ink
    gray = img.convert("L")
    for r in range(3):
        for k in range(4):
            assert np.asarray(gray.crop((k * 200, r * 80, k * 200 + 200, r * 80 + 80))).min() < 180


def test_unknown_word_is_a_clear_error(tmp_path, capsys, fonts_ready):
    assert main(["render", "--words", "qwertyuiop", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown word" in capsys.readouterr().err


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "xmr_core.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "render" in out.stdout and "fonts" in out.stdout


def test_eval_writes_the_contract_json(tmp_path, fonts_ready):
    import json

    out = tmp_path / "eval.json"
    from xmr_core.store.registry import DEFAULT_MODEL

    assert main(["eval", "--model", str(DEFAULT_MODEL), "--concepts", "6", "--json", str(out),
                 "--tsne", str(tmp_path / "tsne.html")]) == 0
    res = json.loads(out.read_text())
    pairs = {f"{q}->{t}" for q in ("zh", "en", "es") for t in ("zh", "en", "es")}
    assert set(res["image_to_text"]) == pairs and set(res["image_to_image"]) == pairs
    assert {"acc@1", "acc@3", "acc@5", "mrr", "n"} <= set(res["image_to_text"]["zh->en"])
    assert {"map@10", "acc@1"} <= set(res["image_to_image"]["es->zh"])
    assert set(res["rd_ratio"]) == {"all", "zh", "en", "es"}
    for key in ("n_images", "n_concepts", "within_acc@1", "cross_acc@1", "latency_ms_p50"):
        assert key in res
    within = sum(res["image_to_text"][f"{x}->{x}"]["acc@1"] for x in ("zh", "en", "es")) / 3
    assert abs(res["within_acc@1"] - within) < 1e-9
    assert (tmp_path / "tsne.html").stat().st_size > 10_000


@pytest.mark.slow
def test_train_overrides_steps_and_seed(tmp_path, fonts_ready):
    import json

    cfg = {"model": SMALL,
           "train": {"steps": 500, "concepts_per_batch": 2, "warmup": 1, "workers": 0, "eval_concepts": 0, "seed": 0}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "cfg.json"), "--out", str(run), "--steps", "2", "--seed", "7"]) == 0
    recorded = json.loads((run / "train_config.json").read_text())["train"]
    assert (recorded["steps"], recorded["seed"]) == (2, 7)
    assert json.loads((run / "checkpoint" / "checkpoint.json").read_text())["step"] == 2


def test_user_roles_from_the_command_line(tmp_path, capsys):
    from xmr_core.cli import main
    from xmr_core.store.database import Store
    from xmr_core.store.users import role

    assert main(["user", "rita", "--role", "reviewer", "--data", str(tmp_path)]) == 0
    assert "rita" in capsys.readouterr().out and role(Store(tmp_path), "rita") == "reviewer"
    assert main(["user", "rita", "--data", str(tmp_path)]) == 0  # back to a plain user
    assert role(Store(tmp_path), "rita") == "user"
    assert main(["user", "a/b", "--data", str(tmp_path)]) == 2
    assert "user name" in capsys.readouterr().err
