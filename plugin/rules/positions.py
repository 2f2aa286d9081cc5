"""Line numbers for rule sources: TOML key search and XML element lines (the parsers give none)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

__all__ = ["toml_key_line", "parse_xml_with_lines", "xml_text"]

# An XML declaration, after an optional UTF-8 byte order mark (and blanks, which Wazuh accepts).
_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*<\?xml(?:[ \t\r\n][^>]*)?\?>")
_ENCODING = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*["']([A-Za-z][A-Za-z0-9._-]*)["']""")


def xml_text(data: bytes) -> str:
    """An XML rule file's text, decoded as its declaration says (UTF-8 by default), with the
    declaration blanked out: parse_xml_with_lines wraps the file in a root of its own, after which
    a declaration is illegal. Blanks keep every line and column where it was.

    Raises UnicodeDecodeError or LookupError (an unknown encoding name).
    """
    m = _DECLARATION.match(data)
    if m is None:
        return data.decode("utf-8")
    enc = _ENCODING.search(m.group())
    decl = m.group().decode("ascii", "replace")
    rest = data[m.end():].decode(enc.group(1).decode("ascii") if enc else "utf-8")
    return "".join(c if c == "\n" else " " for c in decl) + rest


def toml_key_line(text: str, key: str, start: int = 0) -> int:
    """1-based line of the first `key =` at or after line `start` (0 when absent)."""
    pat = re.compile(rf"^\s*{re.escape(key)}\s*=", re.M)
    lines = text.splitlines()
    for i in range(start, len(lines)):
        if pat.match(lines[i]):
            return i + 1
    return 0


def parse_xml_with_lines(text: str) -> tuple[ET.Element, dict[int, int]]:
    """Parse an XML fragment (several roots allowed, as Wazuh files have) under one synthetic root.

    Returns the root and the 1-based source line of each element, keyed by id(element):
    ElementTree's C parser keeps no positions, so the tree is built from expat events here.
    """
    parser = expat.ParserCreate()
    lines: dict[int, int] = {}
    stack: list[ET.Element] = []
    root = ET.Element("shellsieve-root")
    text_parts: dict[int, list[str]] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        elem = ET.SubElement(stack[-1], tag, attrs) if stack else root
        lines[id(elem)] = parser.CurrentLineNumber
        stack.append(elem)

    def end(tag: str) -> None:
        elem = stack.pop()
        elem.text = "".join(text_parts.pop(id(elem), [])) or None

    def chars(data: str) -> None:
        text_parts.setdefault(id(stack[-1]), []).append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    # Wazuh rule files have several top-level <group> elements; wrap them. The wrapper stays on
    # the first line, so expat's line numbers are the file's.
    parser.Parse("<shellsieve-root>", False)
    parser.Parse(text, False)
    parser.Parse("</shellsieve-root>", True)
    return root, lines
