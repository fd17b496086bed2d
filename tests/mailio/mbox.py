"""mbox files made and read by Python's own `mailbox` module, to check
`postbox import` and `postbox export` against a writer and a reader not
written with them.

  mbox.py make mboxo|mboxrd N PATH   writes N messages to PATH; prints them
                                     (JSON: base64 of each, as written in)
  mbox.py read PATH                  prints the messages of an mboxrd (JSON:
                                     from line and base64 of each, unquoted)

Python's mbox writes mboxo (only `From ` is quoted, as `>From `); mboxrd
adds a `>` to every `>*From ` line, done here on the bytes the email
package generates, and written through `mailbox.mbox` unmangled.
"""
import base64
import json
import mailbox
import re
import sys
from email.message import EmailMessage


def message(i, kind):
    m = EmailMessage()
    m["Return-Path"] = f"<sender{i}@far.test>"
    m["From"] = f"Sender {i} <sender{i}@far.test>"
    m["To"] = "alice@localhost"
    m["Subject"] = f"message {i}"
    m["Message-ID"] = f"<{i}.{kind}@far.test>"
    body = f"Hello {i}.\n\nFrom the start of a line, which mbox quotes.\n"
    if kind == "mboxrd":
        # Only mboxrd keeps these apart from a quoted `From `.
        body += ">From a quoted line\n>>From a twice-quoted line\n"
    body += "." + "\n" + "x" * (i * 37 % 500) + "\nlast line\n"
    m.set_content(body)
    return m.as_bytes()


class RdMbox(mailbox.mbox):
    """Writes what it is given as it is: the quoting is done before."""

    _mangle_from_ = False


def make(kind, n, path):
    originals = [message(i, kind) for i in range(1, n + 1)]
    box = (RdMbox if kind == "mboxrd" else mailbox.mbox)(path, create=True)
    for raw in originals:
        if kind == "mboxrd":
            raw = re.sub(rb"(?m)^(>*From )", rb">\1", raw)
        box.add(raw)
    box.close()
    print(json.dumps([base64.b64encode(raw).decode() for raw in originals]))


def read(path):
    box = mailbox.mbox(path)
    out = []
    for key in box.keys():
        raw = re.sub(rb"(?m)^>(>*From )", rb"\1", box.get_bytes(key))
        out.append({"from": box.get_message(key).get_from(), "raw": base64.b64encode(raw).decode()})
    print(json.dumps(out))


if sys.argv[1] == "make":
    make(sys.argv[2], int(sys.argv[3]), sys.argv[4])
else:
    read(sys.argv[2])
