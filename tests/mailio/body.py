"""Reads a message on stdin with Python's email package (an implementation
not written here) and prints its Content-Transfer-Encoding, a tab, and
its body decoded as a mail program shows it, line ends as LF."""
import email
import email.policy
import sys

message = email.message_from_binary_file(sys.stdin.buffer, policy=email.policy.default)
body = message.get_payload(decode=True).replace(b"\r\n", b"\n")
sys.stdout.buffer.write(str(message["Content-Transfer-Encoding"]).encode() + b"\t" + body)
