"""TLS channel bindings (RFC 5056) for SCRAM-SHA-256-PLUS, from the public ``ssl`` API.

What Python 3.11's ``ssl`` can give (decision 0026):

- ``tls-exporter`` (RFC 9266, the binding for TLS 1.3) needs the TLS keying-material
  exporter, which ``ssl`` does not expose; not offered.
- ``tls-unique`` (RFC 5929 §3): ``SSLObject.get_channel_binding``. Defined for TLS 1.2
  and below only (RFC 9266 §3 forbids it with TLS 1.3), so offered on TLS 1.2 connections.
- ``tls-server-end-point`` (RFC 5929 §4): a hash of the server's certificate, which any
  TLS version has. ``ssl`` cannot say which certificate a connection presented, but every
  server context mailstead builds holds one, so :func:`register_certificate` records its
  binding beside the context and the connection's ``SSLObject.context`` finds it.
"""

from __future__ import annotations

import ssl
import weakref

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

TLS_SERVER_END_POINT = "tls-server-end-point"
TLS_UNIQUE = "tls-unique"

#: The tls-server-end-point data of the certificate each server context presents.
_END_POINTS: weakref.WeakKeyDictionary[ssl.SSLContext, bytes] = weakref.WeakKeyDictionary()


def server_end_point(certificate: x509.Certificate) -> bytes | None:
    """RFC 5929 §4.1: the DER certificate hashed with the hash of its signature algorithm,
    SHA-256 in place of MD5 and SHA-1. None for a signature without a separate hash
    (Ed25519, Ed448), where the RFC defines nothing and clients disagree."""
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


def register_certificate(context: ssl.SSLContext, certificate: x509.Certificate) -> None:
    """Remember that ``context`` presents ``certificate`` (the leaf of its chain)."""
    end_point = server_end_point(certificate)
    if end_point is not None:
        _END_POINTS[context] = end_point


def channel_bindings(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, bytes]:
    """The bindings of a server-side TLS connection (type name to data); empty without
    TLS. The context is read after the handshake, so an SNI switch (ACME) is seen."""
    if ssl_object is None:
        return {}
    bindings: dict[str, bytes] = {}
    end_point = _END_POINTS.get(ssl_object.context)
    if end_point is not None:
        bindings[TLS_SERVER_END_POINT] = end_point
    if ssl_object.version() == "TLSv1.2":
        unique = ssl_object.get_channel_binding(TLS_UNIQUE)
        if unique:
            bindings[TLS_UNIQUE] = unique
    return bindings
