"""DMARC results by the `dmarc` package (a Python implementation), for
cases given one per line on stdin, tab-separated:

    record  author-domain  inherited(0/1)  spf-result  spf-domain  dkim

where dkim is `-` or `result:domain` pairs joined by `,`. Output: one line
per case, `<pass|fail> <disposition>`, the disposition being what to apply
(none on a pass). Organizational domains come from publicsuffixlist over
the list file given as the argument.
"""
import sys

import dmarc
from publicsuffixlist import PublicSuffixList

with open(sys.argv[1], "rb") as source:
    psl = PublicSuffixList(source, only_icann=True)


class OrganizationalDomains:
    """The interface the dmarc package asks of a public suffix list."""

    def get_public_suffix(self, domain):
        return psl.privatesuffix(domain) or domain


checker = dmarc.DMARC(publicsuffix=OrganizationalDomains())
for line in sys.stdin:
    record, author, inherited, spf_result, spf_domain, dkim_text = line.rstrip("\n").split("\t")
    org = psl.privatesuffix(author) if inherited == "1" else None
    policy = checker.parse_record(record, domain=author, org_domain=org)
    signatures = []
    if dkim_text != "-":
        for pair in dkim_text.split(","):
            result, domain = pair.split(":")
            signatures.append(dmarc.DKIM(domain=domain, result=dmarc.DKIMResult(result)))
    spf = dmarc.SPF(domain=spf_domain, result=dmarc.SPFResult(spf_result))
    results = dmarc.AuthResults(spf=spf, dkim=signatures)
    outcome = checker.get_result(policy, auth_results=results)
    print(outcome.result.value, outcome.disposition.value)
