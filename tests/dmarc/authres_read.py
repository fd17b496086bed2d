"""Reads Authentication-Results fields with the authres package.

Input on stdin: header fields separated by NUL bytes, each as it would
stand in a message (folded, CRLF line ends). Output, per field: `id <id>`,
then `result <method>=<result>`, `reason <text>` and `prop <type>.<name>=<value>`
lines for each result clause, then `end`; or `error <message>` and `end`.
"""
import re
import sys

import authres

fields = sys.stdin.buffer.read().decode("utf-8").split("\0")
for field in fields:
    if not field:
        continue
    # Unfolding (RFC 5322 §2.2.3) comes before parsing; authres expects it.
    unfolded = re.sub(r"\r\n(?=[ \t])", "", field).rstrip("\r\n")
    try:
        header = authres.AuthenticationResultsHeader.parse(unfolded)
    except Exception as error:  # every parse failure is reported as such
        print(f"error {type(error).__name__}: {error}")
        print("end")
        continue
    print(f"id {header.authserv_id}")
    for result in header.results:
        print(f"result {result.method}={result.result}")
        if result.reason is not None:
            print(f"reason {result.reason}")
        for prop in result.properties:
            print(f"prop {prop.type}.{prop.name}={prop.value}")
    print("end")
