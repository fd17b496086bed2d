#!/usr/bin/env python3
"""Turns the RFC 7208 test suite (rfc7208-tests.yml, from pyspf's source
distribution; see README) into lines tests/spf.rs reads, one field per tab,
free text hex-encoded:

  scenario  <description>
  zone      <name> TIMEOUT                    every type without records times out
  zone      <name> <type> TIMEOUT             this type times out
  zone      <name> A|AAAA|PTR|CNAME <value>
  zone      <name> MX <preference> <host>
  zone      <name> TXT <hex string>...        the character-strings of one record
  case      <name> <ip> <hex mailfrom> <hex helo> <result[,result]> <hex explanation or ->

Zone data follows the suite's own driver (pyspf's test/testspf.py): type
SPF records stand for TXT records when a name has no TXT ones, and a
record of "NONE" is no record."""
import sys
import yaml


def hexed(text):
    return text.encode("utf-8").hex()


def zone_lines(name, records):
    name = name.lower().rstrip(".")
    has_txt = any(isinstance(r, dict) and "TXT" in r for r in records)
    for r in records:
        if r == "TIMEOUT":
            yield ["zone", name, "TIMEOUT"]
            continue
        ((kind, value),) = r.items()
        if kind == "SPF":
            if has_txt:
                continue
            kind = "TXT"
        if value == "NONE":
            continue
        if value == "TIMEOUT":
            yield ["zone", name, kind, "TIMEOUT"]
        elif kind == "TXT":
            strings = [value] if isinstance(value, str) else value
            yield ["zone", name, "TXT"] + [hexed(s) for s in strings]
        elif kind == "MX":
            yield ["zone", name, "MX", str(value[0]), value[1].rstrip(".")]
        else:
            yield ["zone", name, kind, str(value).rstrip(".")]


def main(path):
    with open(path, "rb") as f:
        scenarios = list(yaml.safe_load_all(f))
    out = []
    for scenario in scenarios:
        out.append(["scenario", hexed(scenario["description"])])
        for name, records in scenario.get("zonedata", {}).items():
            out.extend(zone_lines(name, records))
        for name, case in scenario["tests"].items():
            results = case["result"]
            results = [results] if isinstance(results, str) else results
            explanation = case.get("explanation")
            out.append([
                "case", name, str(case["host"]), hexed(case["mailfrom"]),
                hexed(case["helo"]), ",".join(results),
                "-" if explanation is None else hexed(explanation),
            ])
    for line in out:
        print("\t".join(line))


main(sys.argv[1])
