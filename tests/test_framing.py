"""Framing: whole lines out of arbitrary chunks, a carried tail, a cap on line length."""

from __future__ import annotations

from shellsieve.run.framing import Framer


def _collect(framer: Framer, chunks: list[bytes]) -> list[tuple[bytes, bool]]:
    out = []
    for c in chunks:
        out.extend(framer.feed(c))
    return out


class TestFramer:
    def test_lines_split_across_chunks_are_joined(self) -> None:
        """A line cut across reads comes out whole, once."""
        f = Framer(1000)
        out = _collect(f, [b'{"a":', b'1}\n{"b"', b':2}\n'])
        assert out == [(b'{"a":1}\n', True), (b'{"b":2}\n', True)]

    def test_block_holds_many_lines(self) -> None:
        """Lines that arrive together are handed over as one block."""
        assert Framer(1000).feed(b"x\ny\nz") == [(b"x\ny\n", True)]

    def test_finish_gives_last_line_a_newline(self) -> None:
        """Input that ends without a newline still yields its last line."""
        f = Framer(1000)
        f.feed(b"a\nb")
        assert f.finish() == b"b\n"
        assert f.finish() == b""

    def test_over_long_line_passes_through_unscanned(self) -> None:
        """A line longer than the cap is forwarded as it comes, unscanned, counted, and framing resumes."""
        f = Framer(10)
        out = _collect(f, [b"ok\n" + b"x" * 15, b"y" * 5, b"zz\nnext\n"])
        assert out[0] == (b"ok\n", True)
        passed = b"".join(p for p, scan in out if not scan)
        assert passed == b"x" * 15 + b"y" * 5 + b"zz\n"
        assert out[-1] == (b"next\n", True)
        assert f.too_long == 1

    def test_over_long_last_line_is_terminated(self) -> None:
        """An over-long line cut off by end of input gets its newline, so output stays line-framed."""
        f = Framer(4)
        f.feed(b"abcdefgh")
        assert f.finish() == b"\n"
