"""The ocr extension, with the real tesseract: text of the PUT image, `search=`, `invert=`."""

from __future__ import annotations

import io
from pathlib import Path

from extension_cluster import Master
from PIL import Image, ImageDraw, ImageFont

SENTENCE = "Pulzar reads this sentence"
FONTS = [
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),  # Debian's fonts-dejavu-core
    *sorted(Path("/usr/share/fonts").glob("**/DejaVuSans.ttf")),
]


def font(size: int = 56) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A large TrueType font: DejaVu Sans if installed, else the one Pillow ships."""
    for path in FONTS:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def picture(text: str, *, dark: bool = False, fmt: str = "PNG") -> bytes:
    background, ink = ("black", "white") if dark else ("white", "black")
    image = Image.new("RGB", (1200, 160), background)
    ImageDraw.Draw(image).text((40, 40), text, font=font(), fill=ink)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def words(text: str) -> str:
    return " ".join(text.split())


async def test_ocr_reads_back_a_sentence(master: Master) -> None:
    status, body = await master.call("/extension/ocr/sentence.png", data=picture(SENTENCE))
    assert status == 200, body
    assert words(body["data"]["text"]) == SENTENCE
    assert body["data"]["contains"] is None


async def test_search_says_whether_the_text_contains_a_phrase(master: Master) -> None:
    image = picture(SENTENCE, fmt="JPEG")
    status, body = await master.call("/extension/ocr/s.jpg?search=READS%20this", data=image)
    assert (status, body["data"]["contains"]) == (200, True)
    status, body = await master.call("/extension/ocr/s.jpg?search=absent", data=image)
    assert (status, body["data"]["contains"]) == (200, False)


async def test_invert_reads_light_text_on_a_dark_background(master: Master) -> None:
    image = picture(SENTENCE, dark=True)
    status, body = await master.call("/extension/ocr/dark.png?invert=1&search=sentence", data=image)
    assert status == 200, body
    assert words(body["data"]["text"]) == SENTENCE
    assert body["data"]["contains"] is True


async def test_a_body_that_is_not_an_image_is_400(master: Master) -> None:
    status, body = await master.call("/extension/ocr/x.png", data=b"%PDF-1.4 this is no image")
    assert status == 400 and body["status"] == "ko"
    assert "not an image" in body["msg"]
    assert str(master.extensions.spool_dir) not in body["msg"]
    status, body = await master.call("/extension/ocr/x.png", data=picture(SENTENCE)[:200])
    assert status == 400 and "image" in body["msg"]
    status, body = await master.call("/extension/ocr/x.png")
    assert status == 400 and "PUT the image" in body["msg"]
    status, body = await master.call("/extension/ocr/x.png?invert=maybe", data=picture("x"))
    assert status == 400 and "'invert'" in body["msg"]
