"""dkimpy on the other side of Postbox's DKIM: signs messages for Postbox
to verify, and verifies messages Postbox signed.

  dkimpy.py sign ALGORITHM[:BITS] HEADER/BODY LENGTH DOMAIN SELECTOR
      message on stdin; a fresh key is made; prints a JSON object with
      "message" (the signed message, base64) and "record" (the key record
      to publish at SELECTOR._domainkey.DOMAIN)
  dkimpy.py verify RECORDS_JSON
      message on stdin; RECORDS_JSON maps each TXT name to its record;
      prints a JSON list, true or false for each DKIM-Signature in order
"""

import base64
import json
import subprocess
import sys

import dkim


def rsa_key(bits):
    # -traditional: dkimpy reads an RSAPrivateKey (PKCS#1) PEM.
    private = subprocess.run(
        ["openssl", "genrsa", "-traditional", bits],
        check=True, capture_output=True).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"],
        input=private, check=True, capture_output=True).stdout
    return private, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def ed25519_key():
    import nacl.signing
    key = nacl.signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))
    public = base64.b64encode(bytes(key.verify_key)).decode()
    return private, "v=DKIM1; k=ed25519; p=" + public


def sign(algorithm, canon, length, domain, selector):
    message = sys.stdin.buffer.read()
    # "rsa-sha256:1024": an RSA key of that size (default 2048).
    algorithm, _, bits = algorithm.partition(":")
    if algorithm == "rsa-sha256":
        private, record = rsa_key(bits or "2048")
    else:
        private, record = ed25519_key()
    header, body = canon.split("/")
    signature = dkim.sign(
        message, selector.encode(), domain.encode(), private,
        canonicalize=(header.encode(), body.encode()),
        signature_algorithm=algorithm.encode(),
        length=(length == "length"))
    print(json.dumps({
        "message": base64.b64encode(signature + message).decode(),
        "record": record,
    }))


def verify(records_json):
    records = json.loads(records_json)
    message = sys.stdin.buffer.read()

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        record = records.get(name.rstrip(".").lower())
        return record.encode() if record is not None else None

    checker = dkim.DKIM(message)
    count = sum(1 for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                if line.lower().startswith(b"dkim-signature:"))
    results = []
    for index in range(count):
        try:
            results.append(bool(checker.verify(idx=index, dnsfunc=dnsfunc)))
        except dkim.DKIMException as e:
            print(f"signature {index}: {e}", file=sys.stderr)
            results.append(False)
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        sign(*sys.argv[2:7])
    elif sys.argv[1] == "verify":
        verify(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
