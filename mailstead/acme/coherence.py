"""Whether the ``[acme]`` section can work with the rest of the configuration.

Checked by ``serve`` before it starts and by ``config check``: a combination that cannot
obtain a certificate (the only challenge type needs a listener that is off, a name no
public CA certifies, a CA bundle that cannot be read) is a :class:`ConfigError` naming the
key; one that may work depending on what is in front of mailstead (the http listener on
8080 with a proxy or port forward from 80) is a warning, returned as a line of text.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509

from mailstead.acme.files import ACMEFiles
from mailstead.config.schema import Settings
from mailstead.core.errors import ConfigError

#: RFC 8555 §8.3 and RFC 8737 §3: where the CA connects to validate.
HTTP01_PORT = 80
TLS_ALPN01_PORT = 443


def check_acme(settings: Settings) -> list[str]:
    """Raise ConfigError for an ``[acme]`` that cannot work; return the warnings."""
    acme = settings.acme
    if not acme.enabled:
        return []
    warnings: list[str] = []
    for name in settings.acme_names:
        if "." not in name or name.endswith((".localhost", ".local", ".test", ".invalid")):
            key = "acme.names" if acme.names else "hostname"
            raise ConfigError(f"{name} is not a public DNS name, so no ACME CA can certify "
                              "it; set hostname or acme.names", key=key)
        if _is_ip(name):
            raise ConfigError(f"{name} is an IP address; certify a DNS name",
                              key="acme.names")
    usable = []
    http, https = settings.listeners.http, settings.listeners.https
    for kind in acme.challenges:
        if kind == "http-01":
            if not http.enabled or http.tls != "none":
                warnings.append("acme.challenges: http-01 needs listeners.http enabled "
                                "without TLS; it will not be used")
                continue
            if http.port != HTTP01_PORT:
                warnings.append(f"acme.challenges: the CA validates http-01 on port "
                                f"{HTTP01_PORT} but listeners.http.port is {http.port}: it "
                                "works only if a proxy or port forward sends port 80 there")
        else:
            if not https.enabled or https.tls != "implicit":
                warnings.append("acme.challenges: tls-alpn-01 needs listeners.https enabled "
                                "with implicit TLS; it will not be used")
                continue
            if https.port != TLS_ALPN01_PORT:
                warnings.append(f"acme.challenges: the CA validates tls-alpn-01 on port "
                                f"{TLS_ALPN01_PORT} but listeners.https.port is {https.port}: "
                                "it works only if port 443 is forwarded there (not through "
                                "a proxy that ends TLS)")
        usable.append(kind)
    if not usable:
        raise ConfigError("no challenge type can be answered: http-01 needs listeners.http, "
                          "tls-alpn-01 needs listeners.https", key="acme.challenges")
    if not acme.directory.startswith("https://"):
        warnings.append(f"acme.directory: {acme.directory} is not HTTPS (RFC 8555 §6.1 "
                        "requires it; only a test server on loopback would do)")
    if acme.ca_bundle is not None:
        try:
            x509.load_pem_x509_certificates(acme.ca_bundle.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the CA bundle: {exc}", key="acme.ca_bundle",
                              file=str(acme.ca_bundle)) from None
    account_key = ACMEFiles(settings.data_dir).account_key
    if account_key.exists():
        try:
            ACMEFiles(settings.data_dir).load_or_create_account_key()
        except ValueError as exc:
            raise ConfigError(str(exc), key="acme", file=str(account_key)) from None
    return warnings


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
