"""Which text encoding a CSV export uses, and a UTF-8 copy when it is not UTF-8.

CRM exports arrive as UTF-8, UTF-8 with a byte-order mark (Excel's "CSV UTF-8"),
or Windows-1252 (Excel and older Salesforce orgs in Spanish or French), now and
then in the Windows page of another script (Cyrillic, Greek). DuckDB reads only
UTF-8, so other encodings are transcoded once into a scratch copy.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from funnelwise.errors import SourceImportError

SAMPLE_BYTES = 4 << 20
_CHUNK = 1 << 20
# Single-byte Western encodings that detectors confuse with each other; for
# bytes 0x80-0x9f only Windows-1252 has printable characters (€, ’, “, ”, …),
# so when a detector names one of these and the text decodes as 1252, 1252 wins.
_WESTERN = {
    "latin_1",
    "iso8859_1",
    "iso8859_15",
    "cp1252",
    "windows_1252",
    "cp437",
    "cp850",
    "mac_roman",
}
# Latin-script pages the detector names for Western text (German, French and Spanish
# exports came out as cp1250, Central European): their letters overlap Windows-1252's,
# so 1252, the common case, wins. Pages of other scripts (Cyrillic cp1251, Greek
# cp1253, Hebrew, Arabic) are taken as detected: read as 1252, a Russian export's
# "Иван Петров" had become "Èâàí Ïåòðîâ".
_LATIN = {"cp1250", "iso8859_2", "cp1254", "iso8859_9", "cp1257", "cp1258", "iso8859_15"}
# Single-byte pages of other scripts; one is believed only when it makes words of its
# script: a lone € in a 1252 file is Ђ in 1251, and the detector, short of text, says
# 1251. (East Asian pages are multi-byte and decided by the detector alone.)
_SCRIPTS = {"cp1251", "cp1253", "cp1255", "cp1256", "iso8859_5", "iso8859_7", "koi8_r"}
_SCRIPT_WORD = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0590-\u05ff\u0600-\u06ff]{3}")
# The encodings a spreadsheet or CRM writes a CSV in: Windows and ISO code pages, the
# two DOS ones of Excel's "CSV (MS-DOS)", the East Asian ones. On a short sample a
# detector left to all it knows names Mac Classic, DOS national pages or BOM-less
# UTF-16 (a German export with a euro sign read as mac_iceland, € as Ä).
_CANDIDATES = [
    *(f"cp{n}" for n in range(1250, 1259)),
    *("latin_1", "iso8859_2", "iso8859_5", "iso8859_7", "iso8859_9", "iso8859_15"),
    *("cp437", "cp850"),
    *("cp932", "shift_jis", "euc_jp", "gb18030", "big5", "cp949", "euc_kr", "koi8_r"),
]


def _canonical(name: str) -> str:
    try:
        return codecs.lookup(name).name.replace("-", "_")
    except LookupError as exc:
        raise SourceImportError(
            f"unknown encoding {name!r}; use a Python codec name such as utf-8, "
            "utf-8-sig, cp1252 (Windows-1252) or latin-1"
        ) from exc


def _is_utf8(sample: bytes, *, final: bool) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=final)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path: Path, *, sample_bytes: int = SAMPLE_BYTES) -> str:
    """The codec name of a text file: `utf_8`, `utf_8_sig`, `utf_16`, or a guess such
    as `cp1252` from charset-normalizer on the first `sample_bytes` bytes."""
    with path.open("rb") as fh:
        sample = fh.read(sample_bytes)
        at_end = not fh.read(1)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf_8_sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf_16"
    if _is_utf8(sample, final=at_end):
        return "utf_8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=_CANDIDATES).best()
    guess = _canonical(best.encoding) if best is not None else "cp1252"
    lone = guess in _SCRIPTS and not _SCRIPT_WORD.search(sample.decode(guess, errors="ignore"))
    if guess in _WESTERN or guess in _LATIN or lone:
        try:
            sample.decode("cp1252")
        except UnicodeDecodeError:
            return guess
        return "cp1252"
    return guess


def utf8_copy(path: Path, encoding: str | None, scratch: Path) -> tuple[Path, str]:
    """A path to read as UTF-8: the file itself when it already is, else a transcoded
    copy in `scratch`. Returns the path and the encoding used."""
    codec = _canonical(encoding) if encoding else detect_encoding(path)
    if codec in ("utf_8", "utf_8_sig"):
        return path, codec
    target = scratch / f"{path.stem}.utf8{path.suffix}"
    n = 0
    while target.exists():
        n += 1
        target = scratch / f"{path.stem}.utf8.{n}{path.suffix}"
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    offset = 0
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
        while True:
            chunk = src.read(_CHUNK)
            try:
                dst.write(decoder.decode(chunk, final=not chunk))
            except UnicodeDecodeError as exc:
                raise SourceImportError(
                    f"{path.name}: byte {offset + exc.start} cannot be read as {codec}; "
                    "pass the file's encoding with --encoding (for example cp1252 or utf-8)"
                ) from exc
            if not chunk:
                break
            offset += len(chunk)
    return target, codec


def lf_copy(path: Path, scratch: Path) -> Path | None:
    """A copy of a UTF-8 text file in `scratch` with every CR LF line end made LF, when
    the file mixes CR LF and bare LF line ends; None when it does not (nothing written).
    Line numbers stay as they were."""
    crlf = bare = False
    with path.open("rb") as src:
        tail = b""
        while not (crlf and bare):
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            block = tail + chunk
            crlf = crlf or b"\r\n" in block
            bare = bare or block.count(b"\n") > block.count(b"\r\n")
            tail = block[-1:] if block.endswith(b"\r") else b""
    if not (crlf and bare):
        return None
    target = scratch / f"{path.stem}.lf{path.suffix}"
    n = 0
    while target.exists():
        n += 1
        target = scratch / f"{path.stem}.lf.{n}{path.suffix}"
    with path.open("rb") as src, target.open("wb") as dst:
        carry = b""
        while chunk := src.read(_CHUNK):
            block = carry + chunk
            # A CR at the end of a block may start a CR LF split across blocks.
            carry = block[-1:] if block.endswith(b"\r") else b""
            dst.write(block[: len(block) - len(carry)].replace(b"\r\n", b"\n"))
        dst.write(carry)
    return target
