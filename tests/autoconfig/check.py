#!/usr/bin/env python3
"""Reads what Postbox gives mail programs the way they read it, and prints
what they would take from it, one fact a line, for tests/autoconfig.rs to
compare. Exits non-zero, saying why, where a mail program would refuse it.

  check.py thunderbird          < config-v1.1.xml
  check.py autodiscover-request ADDRESS      (prints a request, as ElementTree writes it)
  check.py autodiscover         < response.xml
  check.py mobileconfig         < profile.mobileconfig
  check.py zone                 < `postbox dns records` output

thunderbird follows Thunderbird's readFromXML (accountcreation) and its
Sanitizer, plus the element names of the config-v1.1 format the ISPDB
documents; autodiscover reads the POX response with the Outlook namespaces
and also as Thunderbird's readAutoDiscoverXML does; mobileconfig loads the
profile with plistlib and checks the keys and types Apple documents for
com.apple.mail.managed; zone parses the output of `dns records` as a zone
file with dnslib, encodes it to wire format and reads it back.
"""

import ipaddress
import plistlib
import re
import sys
import uuid
import xml.etree.ElementTree as ET


def fail(why):
    sys.stderr.write(why + "\n")
    sys.exit(1)


# --- Thunderbird -------------------------------------------------------

PROVIDER_CHILDREN = {
    "domain", "displayName", "displayShortName", "incomingServer",
    "outgoingServer", "documentation", "enable", "instructions", "inputField",
}
INCOMING_CHILDREN = {
    "hostname", "port", "socketType", "username", "password",
    "authentication", "pop3", "useGlobalPreferredServer",
}
OUTGOING_CHILDREN = {
    "hostname", "port", "socketType", "username", "password",
    "authentication", "restriction", "addThisServer",
    "useGlobalPreferredServer",
}
SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
INCOMING_AUTH = {
    "password-cleartext", "plain", "password-encrypted", "secure",
    "GSSAPI", "NTLM", "OAuth2",
}
OUTGOING_AUTH = INCOMING_AUTH | {"none", "client-IP-address", "smtp-after-pop"}
PASSWORD_AUTH = {"password-cleartext", "plain", "password-encrypted", "secure"}


def legal_hostname_or_ip(name):
    """Thunderbird's isLegalHostNameOrIP: an IP address, or labels of
    letters, digits and inner hyphens, 255 bytes at most."""
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        pass
    label = re.compile(r"^[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?$", re.I)
    parts = name.rstrip(".").split(".")
    return len(name) <= 255 and len(parts) >= 1 and all(label.match(p) for p in parts)


def sanitize_hostname(value):
    if not value:
        fail("empty host name")
    if re.match(r"^[a-zA-Z0-9\-\.]*(%[A-Z0-9]+%[a-zA-Z0-9\-\.]*)+$", value):
        return value
    if not legal_hostname_or_ip(value):
        fail(f"host name {value!r} is not legal")
    return value.lower()


def sanitize_port(value):
    if value is None or not re.fullmatch(r"[0-9]+", value.strip()):
        fail(f"port {value!r} is not a number")
    port = int(value)
    if not 1 <= port <= 65535:
        fail(f"port {port} out of range")
    return port


def text(element, name):
    found = element.findall(name)
    if len(found) > 1 and name not in ("socketType", "authentication"):
        fail(f"<{name}> more than once")
    return found[0].text.strip() if found and found[0].text else None


def server(element, kind):
    allowed = INCOMING_CHILDREN if kind == "incoming" else OUTGOING_CHILDREN
    for child in element:
        if child.tag not in allowed:
            fail(f"<{child.tag}> is not part of <{element.tag}>")
    hostname = sanitize_hostname(text(element, "hostname"))
    port = sanitize_port(text(element, "port"))
    sockets = [s.text for s in element.findall("socketType") if s.text in SOCKET_TYPES]
    if not sockets:
        fail(f"{kind} server without a proper <socketType>")
    auths = INCOMING_AUTH if kind == "incoming" else OUTGOING_AUTH
    methods = [a.text for a in element.findall("authentication") if a.text in auths]
    if not methods:
        fail(f"{kind} server without a proper <authentication>")
    username = text(element, "username")
    if username is None and (kind == "incoming" or methods[0] in PASSWORD_AUTH):
        fail(f"{kind} server without <username>")
    return f"{hostname} {port} {sockets[0]} {username} {methods[0]}"


def thunderbird(data):
    root = ET.fromstring(data)
    if root.tag != "clientConfig":
        fail(f"root <{root.tag}>, not <clientConfig>")
    if root.get("version") != "1.1":
        fail(f"clientConfig version {root.get('version')!r}")
    providers = root.findall("emailProvider")
    if len(providers) != 1:
        fail("need exactly one <emailProvider>")
    provider = providers[0]
    for child in provider:
        if child.tag not in PROVIDER_CHILDREN:
            fail(f"<{child.tag}> is not part of <emailProvider>")
    lines = [f"id {sanitize_hostname(provider.get('id'))}"]
    domains = [sanitize_hostname(d.text) for d in provider.findall("domain")]
    if not domains:
        fail("need proper <domain>")
    lines.append("domains " + " ".join(domains))
    lines.append(f"displayName {text(provider, 'displayName')}")
    incoming = provider.findall("incomingServer")
    outgoing = provider.findall("outgoingServer")
    if not incoming:
        fail("need proper <incomingServer>")
    if not outgoing:
        fail("need proper <outgoingServer>")
    for element in incoming:
        kind = element.get("type")
        if kind not in ("pop3", "imap", "nntp", "exchange"):
            fail(f"incoming type {kind!r}")
        lines.append(f"incoming {kind} {server(element, 'incoming')}")
    for element in outgoing:
        if element.get("type") != "smtp":
            fail(f"outgoing type {element.get('type')!r}")
        lines.append(f"outgoing smtp {server(element, 'outgoing')}")
    return lines


# --- Autodiscover ------------------------------------------------------

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def autodiscover_request(address):
    root = ET.Element(f"{{{REQUEST_NS}}}Autodiscover")
    request = ET.SubElement(root, f"{{{REQUEST_NS}}}Request")
    ET.SubElement(request, f"{{{REQUEST_NS}}}EMailAddress").text = address
    ET.SubElement(request, f"{{{REQUEST_NS}}}AcceptableResponseSchema").text = RESPONSE_NS
    return ET.tostring(root, encoding="utf-8", xml_declaration=True).decode()


def thunderbird_socket(protocol):
    """readAutoDiscoverXML: SSL off or Encryption None is plain; otherwise
    the port decides between STARTTLS and SSL."""
    ssl = (protocol.findtext(f"{{{RESPONSE_NS}}}SSL") or "").lower()
    encryption = (protocol.findtext(f"{{{RESPONSE_NS}}}Encryption") or "").lower()
    if ssl == "off" or encryption == "none":
        return "plain"
    port = int(protocol.findtext(f"{{{RESPONSE_NS}}}Port"))
    return "STARTTLS" if port in (143, 110, 25, 587) else "SSL"


def autodiscover(data):
    root = ET.fromstring(data)
    if root.tag != f"{{{OUTER_NS}}}Autodiscover":
        fail(f"root {root.tag}")
    response = root.find(f"{{{RESPONSE_NS}}}Response")
    if response is None:
        fail("no Response in the Outlook response schema")
    account = response.find(f"{{{RESPONSE_NS}}}Account")
    if account is None:
        fail("no Account")
    field = lambda e, name: e.findtext(f"{{{RESPONSE_NS}}}{name}")
    lines = [f"account {field(account, 'AccountType')} {field(account, 'Action')}"]
    for protocol in account.findall(f"{{{RESPONSE_NS}}}Protocol"):
        kind = field(protocol, "Type")
        if kind not in ("POP3", "IMAP", "SMTP"):
            fail(f"protocol type {kind!r}")
        sanitize_hostname(field(protocol, "Server"))
        sanitize_port(field(protocol, "Port"))
        for switch in ("SSL", "SPA", "AuthRequired", "DomainRequired"):
            if field(protocol, switch) not in ("on", "off"):
                fail(f"{switch} is {field(protocol, switch)!r}")
        if field(protocol, "Encryption") not in ("None", "SSL", "TLS", "Auto"):
            fail(f"Encryption is {field(protocol, 'Encryption')!r}")
        values = [
            field(protocol, name)
            for name in ("Type", "Server", "Port", "LoginName", "SSL",
                         "Encryption", "SPA", "AuthRequired")
        ]
        lines.append("protocol " + " ".join(values))
        lines.append(f"thunderbird {kind.lower()} {thunderbird_socket(protocol)}")
    return lines


# --- Apple configuration profile --------------------------------------

MAIL_KEYS = {
    # Apple's com.apple.mail.managed payload keys.
    "EmailAccountDescription": str, "EmailAccountName": str,
    "EmailAccountType": str, "EmailAddress": str,
    "IncomingMailServerAuthentication": str, "IncomingMailServerHostName": str,
    "IncomingMailServerPortNumber": int, "IncomingMailServerUseSSL": bool,
    "IncomingMailServerUsername": str, "IncomingPassword": str,
    "OutgoingMailServerAuthentication": str, "OutgoingMailServerHostName": str,
    "OutgoingMailServerPortNumber": int, "OutgoingMailServerUseSSL": bool,
    "OutgoingMailServerUsername": str, "OutgoingPassword": str,
    "OutgoingPasswordSameAsIncomingPassword": bool,
    "PreventMove": bool, "PreventAppSheet": bool, "SMIMEEnabled": bool,
    "disableMailRecentsSyncing": bool, "allowMailDrop": bool,
    "PayloadType": str, "PayloadVersion": int, "PayloadIdentifier": str,
    "PayloadUUID": str, "PayloadDisplayName": str, "PayloadDescription": str,
    "PayloadOrganization": str,
}
MAIL_REQUIRED = [
    "EmailAccountType", "IncomingMailServerHostName",
    "IncomingMailServerAuthentication", "OutgoingMailServerHostName",
    "OutgoingMailServerAuthentication", "PayloadType", "PayloadVersion",
    "PayloadIdentifier", "PayloadUUID",
]
PROFILE_KEYS = {
    "PayloadContent": list, "PayloadDisplayName": str, "PayloadIdentifier": str,
    "PayloadType": str, "PayloadUUID": str, "PayloadVersion": int,
    "PayloadDescription": str, "PayloadOrganization": str,
    "PayloadRemovalDisallowed": bool,
}
AUTH_TYPES = {"EmailAuthNone", "EmailAuthPassword", "EmailAuthCRAMMD5",
              "EmailAuthNTLM", "EmailAuthHTTPMD5"}
REVERSE_DNS = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def typed(payload, keys, where):
    for key, value in payload.items():
        if key not in keys:
            fail(f"{where}: unknown key {key}")
        # bool is an int in Python: compare types exactly.
        if type(value) is not keys[key]:
            fail(f"{where}: {key} is {type(value).__name__}, not {keys[key].__name__}")


def mobileconfig(data):
    profile = plistlib.loads(data)
    typed(profile, PROFILE_KEYS, "profile")
    for key in ("PayloadContent", "PayloadIdentifier", "PayloadType", "PayloadUUID", "PayloadVersion"):
        if key not in profile:
            fail(f"profile: no {key}")
    if profile["PayloadType"] != "Configuration" or profile["PayloadVersion"] != 1:
        fail("profile: not a version 1 Configuration")
    uuids = [str(uuid.UUID(profile["PayloadUUID"])).upper()]
    if not REVERSE_DNS.match(profile["PayloadIdentifier"]):
        fail(f"identifier {profile['PayloadIdentifier']!r} is not reverse-DNS style")
    lines = [f"profile {profile['PayloadIdentifier']} {profile['PayloadDisplayName']}"]
    for payload in profile["PayloadContent"]:
        typed(payload, MAIL_KEYS, "mail payload")
        for key in MAIL_REQUIRED:
            if key not in payload:
                fail(f"mail payload: no {key}")
        if payload["PayloadType"] != "com.apple.mail.managed":
            fail(f"payload type {payload['PayloadType']}")
        if payload["EmailAccountType"] not in ("EmailTypePOP", "EmailTypeIMAP"):
            fail(f"account type {payload['EmailAccountType']}")
        for side in ("Incoming", "Outgoing"):
            if payload[f"{side}MailServerAuthentication"] not in AUTH_TYPES:
                fail(f"{side} authentication {payload[f'{side}MailServerAuthentication']}")
            port = payload.get(f"{side}MailServerPortNumber")
            if port is not None and not 1 <= port <= 65535:
                fail(f"{side} port {port}")
        if not payload["PayloadIdentifier"].startswith(profile["PayloadIdentifier"] + "."):
            fail("the payload's identifier is not under the profile's")
        uuids.append(str(uuid.UUID(payload["PayloadUUID"])).upper())
        lines.append(
            "account {EmailAccountType} {EmailAddress} {EmailAccountName}".format(**payload)
        )
        for side in ("Incoming", "Outgoing"):
            lines.append(
                "{s} {h} {p} ssl={u} {a} {n}".format(
                    s=side.lower(),
                    h=payload[f"{side}MailServerHostName"],
                    p=payload.get(f"{side}MailServerPortNumber"),
                    u=payload.get(f"{side}MailServerUseSSL"),
                    a=payload[f"{side}MailServerAuthentication"],
                    n=payload.get(f"{side}MailServerUsername"),
                )
            )
    if len(set(uuids)) != len(uuids):
        fail("payload UUIDs repeat")
    lines.append("uuids " + " ".join(uuids))
    return lines


# --- Zone lines ----------------------------------------------------------

def zone(data):
    """The whole output as a zone file (comments skipped), through wire
    format and back; prints its SRV and CNAME records."""
    from dnslib import RR, QTYPE, DNSRecord

    records = RR.fromZone(data.decode())
    if not records:
        fail("no records")
    wire = DNSRecord(rr=records).pack()
    lines = []
    for rr in DNSRecord.parse(wire).rr:
        if QTYPE[rr.rtype] in ("SRV", "CNAME"):
            lines.append(f"{rr.rname} {QTYPE[rr.rtype]} {rr.rdata}")
    return lines


def main():
    command = sys.argv[1]
    if command == "autodiscover-request":
        print(autodiscover_request(sys.argv[2]))
        return
    data = sys.stdin.buffer.read()
    readers = {
        "thunderbird": thunderbird,
        "autodiscover": autodiscover,
        "mobileconfig": mobileconfig,
        "zone": zone,
    }
    for line in readers[command](data):
        print(line)


if __name__ == "__main__":
    main()
