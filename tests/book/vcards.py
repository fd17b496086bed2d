"""Reads vCards on stdin with vobject (an implementation not written
here) and prints each card's version, FN and EMAIL, tab-separated, one
card a line; fails on a line over 75 octets or one not ended by CRLF."""
import sys

import vobject

data = sys.stdin.buffer.read()
lines = data.split(b"\r\n")
assert lines[-1] == b"", "the last line is not ended by CRLF"
for line in lines:
    assert b"\n" not in line and b"\r" not in line, f"bare line end in {line!r}"
    assert len(line) <= 75, f"line of {len(line)} octets: {line!r}"
for card in vobject.readComponents(data.decode("utf-8")):
    print(f"{card.version.value}\t{card.fn.value}\t{card.email.value}")
