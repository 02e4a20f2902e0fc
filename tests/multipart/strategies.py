"""Hypothesis strategies for multipart bodies."""

from __future__ import annotations

from hypothesis import strategies as st

TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

header_names = st.text(alphabet=TCHARS, min_size=1, max_size=20)
# Printable ASCII without leading/trailing white space (the parser trims it, as RFC 5322 does).
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
).map(str.strip)


def dense_content(boundary: str) -> st.SearchStrategy[bytes]:
    """Binary content dense with prefixes of the delimiter, never the whole delimiter."""
    delimiter = b"\r\n--" + boundary.encode()
    pieces = st.one_of(
        st.binary(max_size=64),
        st.integers(min_value=0, max_value=len(delimiter) - 1).map(lambda n: delimiter[:n]),
        st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b"--", b"\r\n--"]),
    )
    return (
        st.lists(pieces, max_size=30)
        .map(b"".join)
        .filter(lambda b: delimiter not in b and not b.endswith(delimiter[:1]))
    )


def splits(max_cut: int = 4000) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=max_cut), max_size=25)
