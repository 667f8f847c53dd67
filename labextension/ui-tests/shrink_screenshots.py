"""Shrink the documentation screenshots in docs/images (128-colour PNGs, about a third the size).

Run after `NB2PROD_UPDATE_DOCS_IMAGES=1 jlpm playwright test` (see docs/jupyterlab.md).
Needs Pillow.
"""

from pathlib import Path

from PIL import Image

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

for path in sorted(IMAGES.glob("*.png")):
    before = path.stat().st_size
    image = Image.open(path).convert("RGB")
    image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    print(f"{path.name}: {before // 1024} KiB -> {path.stat().st_size // 1024} KiB")
