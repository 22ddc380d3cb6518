"""The image matching extension (`pip install 'pulzar[vision]'`): finds the PUT image (the
template) inside a base image, with OpenCV's normalised cross-correlation.

    # the base image is a Pulzar key (read through the cluster)...
    curl -X PUT -L -T logo.png 'http://127.0.0.1:31414/extension/imagematching?image_key=/shots/home.png'
    # ... or a URL on this cluster's nodes or an `[extensions] allowed_hosts` host
    curl -X PUT -L -T logo.png 'http://127.0.0.1:31414/extension/imagematching?image_url=http://10.0.0.7/home.png&percent=90'

    {"data": {"found": true, "percent_of_match": 0.9987,
              "coordinates": {"x": 242, "y": 32, "w": 120, "h": 48}}, "status": "ok", ...}

`percent_of_match` is the best match's real score (1.0 is a pixel-perfect match), as a fraction
like the original's `0.9`; `found` is whether it reaches `percent` (1-100, default 80). The
coordinates are the match's top-left corner and its size (the template's), `{}` when not found.
A body or base image that is not an image is a 400, a template larger than the base a 400.
"""

from __future__ import annotations

import math
from typing import Any

from pulzar.extensions.base import Extension, ExtensionError, first
from pulzar.extensions.fetch import read_key, read_url

try:
    import cv2
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"the imagematching extension needs pulzar[vision] (OpenCV): {exc}") from exc

DEFAULT_PERCENT = 80.0


def decode(data: bytes, what: str) -> Any:
    """An image as a BGR array; `ExtensionError` (400) when `data` is not an image."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ExtensionError(f"{what} is not an image")
    return image


def match(base: Any, template: Any) -> tuple[float, int, int]:
    """The best match of `template` in `base`: (score in [0, 1], x, y)."""
    result = cv2.matchTemplate(base, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(result)
    # A flat template has no variance to correlate: the score is not a number.
    score = float(best) if math.isfinite(best) else 0.0
    return min(max(score, 0.0), 1.0), int(x), int(y)


class Imagematching(Extension):
    def percent(self) -> float:
        raw = first(self.params, "percent")
        if raw is None or raw == "":
            return DEFAULT_PERCENT
        try:
            value = float(raw)
        except ValueError:
            raise ExtensionError(f"'percent' must be a number from 1 to 100, got {raw!r}") from None
        if not 1 <= value <= 100:
            raise ExtensionError(f"'percent' must be a number from 1 to 100, got {raw!r}")
        return value

    def base_image(self) -> bytes:
        key, url = first(self.params, "image_key"), first(self.params, "image_url")
        if key:
            return read_key(self.context, key)
        if url:
            return read_url(self.context, url)
        raise ExtensionError("give the base image as image_key=<key> or image_url=<url>")

    def execute(self) -> dict[str, Any]:
        threshold = self.percent() / 100.0
        if self.file_path is None:
            raise ExtensionError("PUT the image to look for as the request body")
        with open(self.file_path, "rb") as fh:
            template = decode(fh.read(), "the body")
        base = decode(self.base_image(), "the base image")
        h, w = template.shape[:2]
        if h > base.shape[0] or w > base.shape[1]:
            raise ExtensionError(
                f"the image ({w}x{h}) is larger than the base image "
                f"({base.shape[1]}x{base.shape[0]})"
            )
        score, x, y = match(base, template)
        found = score >= threshold
        return {
            "found": found,
            "percent_of_match": round(score, 4),
            "coordinates": {"x": x, "y": y, "w": w, "h": h} if found else {},
        }
