"""The running server's certificate keeper: issue when there is none, renew before expiry.

A background task checks every ``[acme] check_interval_seconds`` (twice a day by default)
whether the certificate in ``data_dir/acme`` needs replacing (:func:`renewal_reason`). If so
it runs one order in a worker thread (the ACME library blocks), writes the new pair
atomically and installs it in the listeners' :class:`~mailstead.net.tls.TLSContexts`:
the next handshake on every listener presents it, and sessions already open keep theirs.

A failure keeps the certificate that is being served, logs one line saying why, counts
``mailstead_acme_failures`` and tries again after ``retry_seconds``, doubling with each
failure in a row up to the check interval (Let's Encrypt limits failed validations per
hour; hammering it helps no one). Every outcome is one log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from mailstead.acme.challenges import PendingChallenges
from mailstead.acme.files import ACMEFiles, CurrentCertificate
from mailstead.acme.issuance import ACMEError, Issued, OrderRequest, issue_certificate
from mailstead.config.schema import ACMESettings
from mailstead.core import metrics, sanity
from mailstead.core.errors import ConfigError
from mailstead.delivery.clock import Clock, SystemClock
from mailstead.net.tls import TLSContexts

log = logging.getLogger("mailstead.acme")

Outcome = Literal["current", "issued", "failed"]
Sleep = Callable[[float], Awaitable[None]]
Issue = Callable[[OrderRequest, PendingChallenges], Issued]


def renewal_reason(
    current: CurrentCertificate | None, names: Sequence[str], directory: str, now: datetime,
    renew_before: timedelta,
) -> str | None:
    """Why a new certificate is needed now, or None when the one on disk will do."""
    if current is None:
        return "no certificate yet"
    missing = {name.lower() for name in names} - current.names
    if missing:
        return f"the certificate does not cover {', '.join(sorted(missing))}"
    if current.issuer_directory != directory:
        return f"the certificate came from {current.issuer_directory}, not {directory}"
    if current.not_after - now <= renew_before:
        left = current.not_after - now
        return f"the certificate expires {current.not_after:%Y-%m-%d %H:%M} UTC " \
               f"(in {max(left.days, 0)} days)"
    return None


class CertificateKeeper:
    """Keeps the ACME certificate current and the listeners serving it."""

    def __init__(
        self,
        settings: ACMESettings,
        names: Sequence[str],
        files: ACMEFiles,
        tls: TLSContexts,
        pending: PendingChallenges,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        issue: Issue | None = None,
    ) -> None:
        self.settings = settings
        self.names = list(names)
        self.files = files
        self.tls = tls
        self.pending = pending
        self.clock = clock or SystemClock()
        self._sleep = sleep
        self._issue = issue or self._issue_with_account
        self.failures = 0  # in a row

    def _issue_with_account(self, request: OrderRequest, pending: PendingChallenges) -> Issued:
        try:
            account_key = self.files.load_or_create_account_key()
        except (OSError, ValueError) as exc:
            raise ACMEError(str(exc)) from None
        return issue_certificate(request, account_key, pending)

    def install_current(self) -> bool:
        """Serve the certificate on disk, if there is one for these names (at start-up and
        on SIGHUP). False when there is none or it cannot be loaded (logged)."""
        if self.files.current() is None:
            return False
        try:
            self.tls.reload(self.files.cert, self.files.key)
        except ConfigError as exc:
            log.error("acme: cannot serve the stored certificate: %s", exc)
            return False
        return True

    async def check(self) -> Outcome:
        """One round: renew if needed. Never raises for an ACME or file problem."""
        s = self.settings
        reason = renewal_reason(self.files.current(), self.names, s.directory,
                                self.clock.now(), timedelta(days=s.renew_before_days))
        if reason is None:
            log.info("acme: the certificate for %s is current", ", ".join(self.names))
            return "current"
        log.info("acme: requesting a certificate for %s from %s: %s",
                 ", ".join(self.names), s.directory, reason)
        request = OrderRequest(s.directory, self.names, s.challenges, s.contact, s.ca_bundle)
        try:
            issued = await asyncio.to_thread(self._issue, request, self.pending)
            await asyncio.to_thread(self.files.save, issued.chain_pem, issued.key_pem,
                                    s.directory)
            self.tls.reload(self.files.cert, self.files.key)
        except (ACMEError, ConfigError, OSError) as exc:
            self.failures += 1
            metrics.ACME_FAILURES.inc()
            log.error("acme: could not obtain a certificate for %s (attempt %d, retrying in "
                      "%ds; the current certificate stays in use): %s", ", ".join(self.names),
                      self.failures, self.retry_delay(), exc)
            return "failed"
        self.failures = 0
        metrics.ACME_ISSUED.inc()
        log.info("acme: installed a new certificate for %s, valid until %s UTC",
                 ", ".join(self.names), f"{issued.not_after:%Y-%m-%d %H:%M}")
        return "issued"

    def retry_delay(self) -> int:
        """Seconds to the next attempt after ``failures`` failures in a row."""
        s = self.settings
        if self.failures == 0:
            return s.check_interval_seconds
        delay: int = s.retry_seconds << min(self.failures - 1, 30)
        return min(delay, s.check_interval_seconds)

    async def run(self) -> None:
        """Check now, then forever at the interval (sooner after a failure)."""
        while True:
            try:
                await self.check()
            except Exception as exc:  # a bug must not end renewals for the process's life
                self.failures += 1
                metrics.ACME_FAILURES.inc()
                sanity.degrade(log, exc, "acme: bug (%s) in the renewal check", exc_info=True)
            await self._sleep(self.retry_delay())
