"""The OCR extension (`pip install 'pulzar[ocr]'` and the tesseract-ocr system package).

    curl -X PUT -L -T scan.png 'http://127.0.0.1:31414/extension/ocr/scan.png'
    {"data": {"text": "Invoice 2041\\n...", "contains": null}, "status": "ok", "msg": "ok"}

    curl -X PUT -L -T scan.png 'http://127.0.0.1:31414/extension/ocr/scan.png?search=invoice'
    {"data": {"text": "...", "contains": true}, ...}

`search=` is looked for in the text, ignoring case and runs of white space (`contains` is
null without it). `invert=1` inverts the image first, for light text on a dark background.
A body that is not an image is a 400.
"""

from __future__ import annotations

import re
from typing import Any

from pulzar.extensions.base import Extension, ExtensionError, first, flag

try:
    import pytesseract
    from PIL import Image, ImageOps, UnidentifiedImageError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"the ocr extension needs pulzar[ocr] (pytesseract, Pillow): {exc}") from exc

_SPACE = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def open_image(path: str | None) -> Image.Image:
    """The PUT body as a decoded image; `ExtensionError` (400) when it is none."""
    if path is None:
        raise ExtensionError("PUT the image as the request body")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except UnidentifiedImageError:
        raise ExtensionError("the body is not an image (PNG, JPEG, TIFF, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # A truncated or corrupt image; the message may name the spool file: leave it out.
        raise ExtensionError(f"the body is not a readable image ({type(exc).__name__})") from None


class Ocr(Extension):
    def execute(self) -> dict[str, Any]:
        search = first(self.params, "search")
        invert = flag(self.params, "invert")
        image = open_image(self.file_path)
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        if invert:
            image = ImageOps.invert(image)
        # Tesseract stops itself a little before the call's own timeout would kill it.
        timeout = max(1.0, self.context.timeout - 1.0)
        try:
            text: str = pytesseract.image_to_string(image, timeout=timeout)
        except pytesseract.TesseractNotFoundError:
            raise ExtensionError(
                "the tesseract program is not installed (apt-get install tesseract-ocr)",
                status=503,
            ) from None
        except pytesseract.TesseractError as exc:
            raise ExtensionError(f"tesseract could not read the image: {exc}") from None
        except RuntimeError as exc:  # pytesseract's own timeout
            raise ExtensionError(f"tesseract did not finish: {exc}", status=504) from None
        contains = None if search is None else _normal(search) in _normal(text)
        return {"text": text, "contains": contains}
