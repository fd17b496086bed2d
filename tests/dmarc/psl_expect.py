"""Registrable domains by the publicsuffixlist package, for names made from
every rule of the ICANN section of the given list file.

Output lines: `<domain> <registrable domain or -> `, domains in A-label form.
For each rule (wildcards filled with `wild`, exceptions without `!`): the
rule itself, one label more, two labels more.
"""
import sys

from publicsuffixlist import PublicSuffixList


def a_label(label):
    if label.isascii():
        return label
    return "xn--" + label.encode("punycode").decode("ascii")


def ascii_domain(domain):
    return ".".join(a_label(label) for label in domain.split("."))


path = sys.argv[1]
with open(path, "rb") as source:
    psl = PublicSuffixList(source, only_icann=True)
rules = []
with open(path, encoding="utf-8") as text:
    inside = False
    for line in text:
        line = line.strip()
        if line.startswith("// ===BEGIN ICANN DOMAINS==="):
            inside = True
        elif line.startswith("// ===END ICANN DOMAINS==="):
            break
        elif inside and line and not line.startswith("//"):
            rules.append(line.split()[0].lstrip("!").replace("*", "wild"))
for rule in rules:
    for prefix in ("", "x.", "y.x."):
        domain = ascii_domain(prefix + rule)
        registrable = psl.privatesuffix(domain)
        print(domain, ascii_domain(registrable) if registrable else "-")
