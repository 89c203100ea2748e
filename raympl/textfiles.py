"""Reading the small text files users hand to raympl (profile and trace CSVs, schedule lists): UTF-8 only, a
byte-order mark allowed, and one clear line for anything else (UTF-16, a binary file, an unreadable path)."""

from __future__ import annotations

import re
from pathlib import Path

DIGITS = re.compile(r"[0-9]+")


def is_count(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' and other digits that int() refuses."""
    return DIGITS.fullmatch(text.strip()) is not None


def read_text(path: Path, what: str, error: type[Exception]) -> str:
    """The file's text; `error` with one line naming `what` and the file when it is not UTF-8 text."""
    try:
        data = Path(path).read_bytes()
    except OSError as failure:
        raise error(f"invalid {what} {str(path)!r}: cannot be read ({failure.strerror})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"invalid {what} {str(path)!r}: UTF-16 text; save it as UTF-8")
    if b"\x00" in data:
        raise error(f"invalid {what} {str(path)!r}: a binary file, not UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as failure:
        raise error(f"invalid {what} {str(path)!r}: not UTF-8 text (byte {failure.start} cannot be "
                    "decoded); save it as UTF-8") from None
