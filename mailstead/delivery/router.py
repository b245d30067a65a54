"""Where mail for an address goes: local accounts (and which folder), or the outbound queue.

Resolution order for an address in a local domain (the first that matches wins):

1. an account (``user@d``; ``user+tag@d`` with the configured separator, into folder
   ``tag`` when the account enabled plus-folders and that folder exists, else INBOX);
2. an alias (``a@d`` or ``a+tag@d``): each target is resolved again;
3. a group: each member is resolved again; external members go to the outbound queue;
4. the catch-all alias ``@d``;
5. nothing: unknown recipient (``550 5.1.1``).

Expansion is recursive with a visited set (a cycle ends quietly) and a depth limit (a
chain longer than ``MAX_DEPTH`` is an operator error: ``554 5.4.6`` routing loop). An
address in a domain we do not host is remote; whether it may be relayed to is the
caller's policy (see :mod:`mailstead.delivery.deliver`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from mailstead.core.errors import InvalidName, MailsteadError, NotFound
from mailstead.core.types import Address, SendAs
from mailstead.store.interfaces import Directory, Mailboxes, account_change_key
from mailstead.store.models import User

log = logging.getLogger("mailstead.delivery")

MAX_DEPTH = 10  # alias/group nesting; deeper is treated as a routing loop


class DeliveryError(MailsteadError):
    """A recipient or message cannot be delivered; carries the SMTP outcome (RFC 3463).

    ``text`` is generic and safe to show a client; details go to the log.
    """

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        self.code = code
        self.enhanced = enhanced
        self.text = text
        super().__init__(f"{code} {enhanced} {text}")

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


UNKNOWN_USER = DeliveryError(550, "5.1.1", "No such user here")


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """One account that receives the message, and the folder it lands in."""

    user_id: int
    address: str
    mailbox: str = "INBOX"
    quota_bytes: int = 0
    used_bytes: int = 0

    def over_quota(self, extra: int = 0) -> bool:
        """Already full, or would be with ``extra`` more bytes (the SIZE the client declared)."""
        if not self.quota_bytes:
            return False
        if extra > 0:
            return self.used_bytes + extra > self.quota_bytes
        return self.used_bytes >= self.quota_bytes


@dataclass(frozen=True, slots=True)
class Route:
    """Where one envelope recipient goes: local targets and/or remote addresses."""

    local: tuple[LocalTarget, ...] = ()
    remote: tuple[str, ...] = ()
    is_local_domain: bool = True


#: How long a resolved local route is reused. Changes made by this process (the admin API,
#: tests) are seen at once through the store's directory generation; changes made by
#: another process (the ``mailstead`` command on a running server) within this time.
ROUTE_CACHE_SECONDS = 2.0
ROUTE_CACHE_SIZE = 10_000


class RouterStore(Directory, Mailboxes, Protocol):
    """What routing reads: the directory (domains, accounts, aliases, groups) and an
    account's folders (plus-addressing into a folder)."""


class Router:
    """Resolves addresses against the store; one per process.

    Routes to local accounts are cached for ``ROUTE_CACHE_SECONDS``: a busy MX sees the
    same recipients again and again, and each resolution costs two or more store reads.
    Only successful local routes are cached; an unknown recipient or a domain we do not
    host is looked up every time, so a newly added account or domain receives mail at
    once. A cached route remembers every address, catch-all, domain and account's folders
    its resolution read, and a change this process makes to one of them forgets it; other
    routes stay (an admin adding aliases all day does not empty the MX's cache). Changes
    made by another process are seen when the entry expires. Quota in a cached route may
    be slightly stale; the store enforces it again when the message is committed.
    """

    def __init__(self, store: RouterStore, plus_separator: str = "+") -> None:
        self.store = store
        self.separator = plus_separator
        #: key -> (expiry, route, every key the resolution depended on)
        self._cache: OrderedDict[str, tuple[float, Route, frozenset[str]]] = OrderedDict()
        self._cache_generation = -1

    def _catch_up(self) -> None:
        """Forget the routes that a directory change since the last look may have altered:
        those whose resolution read an address, catch-all, domain or account's folders the
        change touched (everything, when the store no longer knows what changed)."""
        generation = self.store.directory_generation
        if generation == self._cache_generation:
            return
        touched = self.store.directory_changes_since(self._cache_generation)
        if touched is None:
            self._cache.clear()
        elif touched:
            for key in [k for k, (_, _, used) in self._cache.items() if used & touched]:
                del self._cache[key]
        self._cache_generation = generation

    def _cached(self, key: str) -> Route | None:
        self._catch_up()
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._cache[key]
            return None
        return entry[1]

    def _remember(self, key: str, route: Route, generation: int,
                  used: frozenset[str]) -> None:
        if generation != self._cache_generation:
            return  # the directory changed while we resolved: do not keep the answer
        self._cache[key] = (time.monotonic() + ROUTE_CACHE_SECONDS, route, used)
        if len(self._cache) > ROUTE_CACHE_SIZE:
            self._cache.popitem(last=False)  # the oldest entry: it expires first anyway

    async def local_domain(self, domain: str) -> str | None:
        """The hosted domain's stored name, or None. A U-label (RFC 6531) also matches the
        domain's A-label form."""
        if domain.startswith("["):
            return None
        if await self.store.has_domain(domain):
            return domain
        if not domain.isascii():
            try:
                ace = domain.encode("idna").decode("ascii")
            except UnicodeError:
                return None
            if await self.store.has_domain(ace):
                return ace
        return None

    async def resolve(self, address: Address) -> Route:
        """Route for one RCPT. Raises DeliveryError for unknown or disabled recipients."""
        key = str(address)
        cached = self._cached(key)
        if cached is not None:
            return cached
        generation = self._cache_generation
        domain = await self.local_domain(address.domain)
        if domain is None:
            return Route(remote=(str(address),), is_local_domain=False)
        local: list[LocalTarget] = []
        remote: list[str] = []
        used: set[str] = set()
        await self._expand(Address(address.local, domain), 0, set(), local, remote, used,
                           top=True)
        if not local and not remote:
            raise UNKNOWN_USER
        route = Route(tuple(local), tuple(remote))
        if local:
            used.update(account_change_key(target.user_id) for target in local)
            self._remember(key, route, generation, frozenset(used))
        return route

    async def _expand(
        self,
        address: Address,
        depth: int,
        seen: set[str],
        local: list[LocalTarget],
        remote: list[str],
        used: set[str],
        *,
        top: bool = False,
    ) -> None:
        """Add the targets of ``address`` to ``local`` and ``remote``; ``used`` collects the
        keys of everything the answer depended on (the cache forgets it when one changes)."""
        key = f"{address.local.casefold()}@{address.domain}"
        if key in seen:
            return  # alias cycle or duplicate member: deliver once
        seen.add(key)
        used.add(key)
        for separator in {"+", self.separator} - {""}:  # the store strips "+tags" too
            base = address.without_tag(separator)[0]
            used.add(f"{base.local.casefold()}@{base.domain}")
        if depth > MAX_DEPTH:
            log.warning("alias/group expansion deeper than %d at %s", MAX_DEPTH, address)
            raise DeliveryError(554, "5.4.6", "Routing loop detected")
        if not top:
            used.add(f"@{address.domain.lower()}")  # a remote domain may become ours
            if not address.domain.isascii():
                with contextlib.suppress(UnicodeError):
                    used.add("@" + address.domain.encode("idna").decode("ascii").lower())
            domain = await self.local_domain(address.domain)
            if domain is None:
                remote.append(str(address))
                return
            address = Address(address.local, domain)
            used.add(f"{address.local.casefold()}@{address.domain}")

        user, tag = await self._find_account(address)
        if user is not None:
            if user.disabled:
                if top:
                    raise DeliveryError(550, "5.2.1", "Mailbox disabled")
                return
            mailbox = await self._folder_for(user, tag)
            local.append(LocalTarget(user.id, user.address, mailbox, user.quota_bytes,
                                     user.used_bytes))
            return

        base, tag = address.without_tag(self.separator) if self.separator else (address, None)
        for candidate in (address, base) if tag is not None else (address,):
            alias = await self.store.find_alias(str(candidate))
            if alias is not None:
                for target in alias.targets:
                    await self._expand_text(target, depth + 1, seen, local, remote, used)
                return
            group = await self.store.find_group(str(candidate))
            if group is not None:
                for member in group.members:
                    await self._expand_text(member, depth + 1, seen, local, remote, used)
                return

        used.add(f"@{address.domain}")
        catch_all = await self.store.find_alias(f"@{address.domain}")
        if catch_all is not None:
            for target in catch_all.targets:
                await self._expand_text(target, depth + 1, seen, local, remote, used)

    async def _expand_text(self, text: str, depth: int, seen: set[str],
                           local: list[LocalTarget], remote: list[str], used: set[str]) -> None:
        try:
            target = Address.parse(text)
        except InvalidName:
            log.warning("ignoring invalid alias/group target %r", text)
            return
        await self._expand(target, depth, seen, local, remote, used)

    async def _find_account(self, address: Address) -> tuple[User | None, str | None]:
        """(account, tag) for an address, honouring the configured subaddress separator."""
        user = await self.store.find_user(str(address))
        if user is not None:
            exact = user.address.casefold() == str(address).casefold()
            if exact:
                return user, None
            # The store strips "+tags" itself; accept that only when "+" is our separator.
            if self.separator == "+":
                return user, address.without_tag("+")[1]
            user = None
        if self.separator and self.separator != "+":
            base, tag = address.without_tag(self.separator)
            if tag is not None:
                found = await self.store.find_user(str(base))
                if found is not None and found.address.casefold() == str(base).casefold():
                    return found, tag
        return None, None

    async def _folder_for(self, user: User, tag: str | None) -> str:
        """``tag`` if the user enabled plus-folders and has that folder, else INBOX."""
        if not tag or not user.plus_folders:
            return "INBOX"
        try:
            box = await self.store.get_mailbox(user.id, tag)
        except (NotFound, InvalidName):
            return "INBOX"
        return box.name

    async def may_send_as(self, user_id: int, address: Address | None) -> bool:
        """May this account submit mail with ``address`` as its sender (MAIL FROM, or the
        header From: and Sender:; ``None`` is the null reverse-path)? Only what it
        :meth:`owns`, unless the admin allowed it any (``mailstead user send-as``). The
        one definition every sender check asks; read from the store each time, so a
        change applies to the next message."""
        if await self.may_send_as_anyone(user_id):
            return True
        return address is not None and await self.owns(user_id, address)

    async def may_send_as_anyone(self, user_id: int) -> bool:
        """The admin allowed this account any sender (``mailstead user send-as ... any``)."""
        try:
            user = await self.store.get_user(user_id)
        except NotFound:
            return False
        return user.send_as is SendAs.ANY

    async def owns(self, user_id: int, address: Address) -> bool:
        """May this account use ``address`` as its sender? Its own address (with or without
        a tag) or an alias that delivers to it; never a catch-all, a group or another user."""
        domain = await self.local_domain(address.domain)
        if domain is None:
            return False
        return await self._owns(user_id, Address(address.local, domain), 0, set())

    async def _owns(self, user_id: int, address: Address, depth: int, seen: set[str]) -> bool:
        key = f"{address.local.casefold()}@{address.domain}"
        if key in seen or depth > MAX_DEPTH:
            return False
        seen.add(key)
        user, _ = await self._find_account(address)
        if user is not None:
            return user.id == user_id
        base, tag = address.without_tag(self.separator) if self.separator else (address, None)
        for candidate in (address, base) if tag is not None else (address,):
            alias = await self.store.find_alias(str(candidate))
            if alias is None:
                continue
            for target in alias.targets:
                try:
                    parsed = Address.parse(target)
                except InvalidName:
                    continue
                if await self.local_domain(parsed.domain) is None:
                    continue
                if await self._owns(user_id, parsed, depth + 1, seen):
                    return True
            return False
        return False
