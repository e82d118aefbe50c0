import subprocess
import sys

import numpy as np
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
