"""The documents served on a name of their own: the MTA-STS policy and PACC.

Both are asked for on a host named after the mail domain, ``mta-sts.<domain>`` (RFC 8461
§3.3) and ``ua-auto-config.<domain>`` (draft-ietf-mailmaint-pacc), so the Host header is
what says which domain is meant; a request with any other Host, or for a domain not hosted
here, is 404. The documents themselves are built by mailstead/admin/dns.py, beside the DNS
records that carry their id and digest, so that what is served is what the records name.
"""

from __future__ import annotations

#: Longest Host header value looked at: a domain name is at most 253 octets, plus a port.
MAX_HOST = 260
MTA_STS_LABEL = "mta-sts"
PACC_LABEL = "ua-auto-config"


def domain_under(host: str | None, label: str) -> str | None:
    """The mail domain of ``host`` when it is ``<label>.<domain>`` (port and a final dot
    ignored, lower case); None otherwise."""
    if not host or len(host) > MAX_HOST:
        return None
    name = host if host.endswith("]") else host.rsplit(":", 1)[0]
    name = name.lower().rstrip(".")
    prefix = label + "."
    if not name.startswith(prefix):
        return None
    domain = name.removeprefix(prefix)
    return domain if domain and "." in domain else None
