"""PushSubscription/get and /set (RFC 8620 §7.2): the URLs a client registers for the
server to POST state changes to, each tied to the credentials that made it.

Invariants:

- the methods take no ``accountId`` (§7.2.1, §7.2.2) and have no state; a caller sees and
  changes only its own account's subscriptions, and another's id is ``notFound``;
- ``url`` and ``keys`` are never returned (§7.2.1: they may be private to the device), and
  ``verificationCode`` only once the client has set it: until then a client with the
  credentials but without the URL's messages cannot verify;
- a URL is accepted only if the sender would POST to it: https (unless
  ``jmap.push_allow_http``) and every address of its host public (unless
  ``jmap.push_allow_private_destinations``); the sender checks again when it connects;
- ``expires`` is never later than ``jmap.push_subscription_max_days`` from now; the value
  used is returned when it is not the one the client asked for;
- ``deviceClientId``, ``url`` and ``keys`` are fixed once created (``invalidProperties``);
- the sender (:class:`PushNotifier`) hears of every creation, to send the PushVerification
  at once, and of every other change, to start or stop watching the account.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from mailstead.config.schema import JMAPSettings
from mailstead.core.errors import NotFound
from mailstead.http.jmap.dispatch import CORE, CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail.services import MailServices
from mailstead.http.jmap.standard import AccountlessGetArgs, AccountlessSetArgs, apply_patch
from mailstead.net.outbound_http import (
    Destination,
    DestinationRefused,
    PostFailed,
    Resolver,
    checked_addresses,
    system_resolver,
)
from mailstead.store.models import NewPushSubscription, PushKeys, PushSubscription, User

PROPERTIES = ("id", "deviceClientId", "url", "keys", "verificationCode", "expires", "types")
#: RFC 8620 §7.2.1: "the url and keys properties MUST NOT be returned".
_NEVER_RETURNED = frozenset({"url", "keys"})
_IMMUTABLE = ("id", "deviceClientId", "url", "keys")
_ID = re.compile(r"P[1-9][0-9]{0,17}")
MAX_DEVICE_CLIENT_ID = 255
MAX_TYPES = 32
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


def utc_now() -> datetime:
    return datetime.now(UTC)


class PushNotifier(Protocol):
    """The push sender, as the methods tell it what changed."""

    def verification_needed(self, subscription: PushSubscription) -> None:
        """RFC 8620 §7.2.2: POST the PushVerification to a new subscription's URL."""

    def subscriptions_changed(self, user_id: int) -> None:
        """The account's subscriptions changed (verified, renewed, retyped, destroyed)."""


@dataclass(frozen=True, slots=True)
class SubscriptionPolicy:
    max_days: int = 7
    max_subscriptions: int = 20
    allow_http: bool = False
    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver)

    @classmethod
    def from_settings(cls, jmap: JMAPSettings) -> SubscriptionPolicy:
        return cls(
            max_days=jmap.push_subscription_max_days,
            max_subscriptions=jmap.push_max_subscriptions,
            allow_http=jmap.push_allow_http,
            allow_private=jmap.push_allow_private_destinations,
        )


def subscription_id(number: int) -> str:
    return f"P{number}"


def subscription_number(value: str) -> int | None:
    return int(value[1:]) if _ID.fullmatch(value) else None


def utc_date(value: datetime) -> str:
    """RFC 8620 §1.4 UTCDate."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(prop: str, why: str) -> SetRefused:
    return SetRefused(SetError("invalidProperties", f"{prop}: {why}", (prop,)))


def subscription_json(subscription: PushSubscription) -> dict[str, Any]:
    """Every property a client may read back."""
    return {
        "id": subscription_id(subscription.id),
        "deviceClientId": subscription.device_client_id,
        "verificationCode": subscription.verification_code if subscription.verified else None,
        "expires": utc_date(subscription.expires),
        "types": None if subscription.types is None else list(subscription.types),
    }


def _base64url(value: Any, prop: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) > 200:
        raise _invalid("keys", f"{prop} must be URL-safe base64")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise _invalid("keys", f"{prop} must be URL-safe base64") from None
    if len(raw) != size:
        raise _invalid("keys", f"{prop} must be {size} octets")
    return raw


def parse_keys(value: Any) -> PushKeys | None:
    """RFC 8620 §7.2 ``keys``: a P-256 public key as an uncompressed point (RFC 8291 §3.1)
    and a 16-octet authentication secret (§3.2), or null for unencrypted pushes."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"p256dh", "auth"}:
        raise _invalid("keys", "an object with p256dh and auth")
    point = _base64url(value["p256dh"], "p256dh", 65)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise _invalid("keys", "p256dh is not a P-256 public key") from None
    _base64url(value["auth"], "auth", 16)
    return PushKeys(value["p256dh"], value["auth"])


def parse_types(value: Any) -> tuple[str, ...] | None:
    """RFC 8620 §7.2 ``types``: type names, or null for every type. Names this server has
    no state for are kept: they simply never change."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_TYPES
        or not all(isinstance(v, str) and _TYPE_NAME.fullmatch(v) for v in value)
    ):
        raise _invalid("types", f"an array of at most {MAX_TYPES} type names, or null")
    return tuple(dict.fromkeys(value))


def parse_utc_date(value: Any, prop: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _invalid(prop, "a UTCDate")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(prop, "a UTCDate") from None
    if parsed.tzinfo is None:
        raise _invalid(prop, "a UTCDate ends in Z")
    return parsed.astimezone(UTC)


class PushSubscriptionMethods:
    def __init__(
        self,
        services: MailServices,
        policy: SubscriptionPolicy,
        notifier: PushNotifier,
        *,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.services = services
        self.policy = policy
        self.notifier = notifier
        self.now = now

    def register(self, methods: Methods) -> None:
        # RFC 8620 §7.2: part of the core capability.
        methods.add("PushSubscription/get", CORE, self.get)
        methods.add("PushSubscription/set", CORE, self.set)

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = AccountlessGetArgs.parse(arguments, self.services.limits)
        if args.properties is not None:
            bad = [p for p in args.properties if p not in PROPERTIES]
            if bad:
                raise MethodError("invalidArguments", f"unknown property {bad[0][:60]!r}")
        user = await self.services.user(context)
        found = {
            subscription_id(s.id): s for s in await self.services.store.push_subscriptions(user.id)
        }
        wanted = list(found) if args.ids is None else [context.resolve_id(i) or i for i in args.ids]
        listed = []
        for value in wanted:
            if value in found:
                obj = subscription_json(found[value])
                if args.properties is not None:
                    obj = {k: v for k, v in obj.items() if k == "id" or k in args.properties}
                listed.append(obj)
        return {"list": listed, "notFound": [v for v in wanted if v not in found]}

    async def set(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = AccountlessSetArgs.parse(arguments, self.services.limits)
        store = self.services.store
        user = await self.services.user(context)
        current = {subscription_id(s.id): s for s in await store.push_subscriptions(user.id)}
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for creation_id, obj in args.create.items():
            try:
                if len(current) >= self.policy.max_subscriptions:
                    raise SetRefused(
                        SetError(
                            "overQuota",
                            f"at most {self.policy.max_subscriptions} push subscriptions",
                        )
                    )
                made, answer = await self._create(user, obj)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            current[subscription_id(made.id)] = made
            context.created_ids[creation_id] = subscription_id(made.id)
            created[creation_id] = answer
            self.notifier.verification_needed(made)
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for target, patch in args.update.items():
            real = context.resolve_id(target)
            try:
                if real is None or real not in current:
                    raise SetRefused(SetError("notFound", "no such push subscription"))
                current[real], updated[real] = await self._update(user, current[real], patch)
            except SetRefused as refused:
                not_updated[target] = refused.error.to_json()
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for target in args.destroy:
            real = context.resolve_id(target)
            subscription = current.pop(real, None) if real is not None else None
            if subscription is None or real is None:
                not_destroyed[target] = SetError("notFound", "no such push subscription").to_json()
                continue
            try:
                await store.remove_push_subscription(user.id, subscription.id)
            except NotFound:
                not_destroyed[target] = SetError("notFound", "no such push subscription").to_json()
                continue
            destroyed.append(real)
        if updated or destroyed:
            self.notifier.subscriptions_changed(user.id)
        # RFC 8620 §7.2.2: no accountId, oldState or newState.
        return {
            "created": created or None,
            "updated": updated or None,
            "destroyed": destroyed or None,
            "notCreated": not_created or None,
            "notUpdated": not_updated or None,
            "notDestroyed": not_destroyed or None,
        }

    def _expires(self, value: Any, prop: str = "expires") -> datetime:
        """RFC 8620 §7.2: "The server MAY choose to set an expiry if none is given by the
        client or modify the expiry time given by the client to a shorter duration."""
        now = self.now().replace(microsecond=0)
        latest = now + timedelta(days=self.policy.max_days)
        if value is None:
            return latest
        asked = parse_utc_date(value, prop).replace(microsecond=0)
        if asked <= now:
            raise _invalid(prop, "already past")
        return min(asked, latest)

    async def _check_url(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _invalid("url", "required")
        try:
            destination = Destination.parse(value, allow_http=self.policy.allow_http)
        except DestinationRefused as exc:
            raise _invalid("url", str(exc)) from None
        try:
            await checked_addresses(
                destination,
                allow_private=self.policy.allow_private,
                resolver=self.policy.resolver,
            )
        except (DestinationRefused, PostFailed):
            # One answer for a private address and for no address: which names exist in
            # the server's own network is not for a client to learn.
            raise _invalid("url", "its host is not a public address that resolves") from None
        return value

    async def _create(
        self, user: User, obj: dict[str, Any]
    ) -> tuple[PushSubscription, dict[str, Any]]:
        unknown = sorted(set(obj) - set(PROPERTIES))
        if unknown:
            raise SetRefused(
                SetError("invalidProperties", "not a PushSubscription property", tuple(unknown))
            )
        if "id" in obj:
            raise _invalid("id", "set by the server")
        if obj.get("verificationCode") is not None:
            # RFC 8620 §7.2: the server makes the code and sends it to the URL.
            raise _invalid("verificationCode", "set only after the PushVerification came")
        device = obj.get("deviceClientId")
        if not isinstance(device, str) or not device or len(device) > MAX_DEVICE_CLIENT_ID:
            raise _invalid("deviceClientId", f"a string of 1 to {MAX_DEVICE_CLIENT_ID} characters")
        keys = parse_keys(obj.get("keys"))
        types = parse_types(obj.get("types"))
        expires = self._expires(obj.get("expires"))
        url = await self._check_url(obj.get("url"))
        made = await self.services.store.add_push_subscription(
            user.id,
            NewPushSubscription(
                device_client_id=device,
                url=url,
                keys=keys,
                verification_code=secrets.token_urlsafe(24),
                expires=expires,
                types=types,
            ),
        )
        answer: dict[str, Any] = {"id": subscription_id(made.id)}
        if obj.get("expires") != utc_date(made.expires):
            answer["expires"] = utc_date(made.expires)
        return made, answer

    async def _update(
        self, user: User, subscription: PushSubscription, patch: dict[str, Any]
    ) -> tuple[PushSubscription, dict[str, Any] | None]:
        before = subscription_json(subscription)
        before["url"] = subscription.url
        keys = subscription.keys
        before["keys"] = None if keys is None else {"p256dh": keys.p256dh, "auth": keys.auth}
        try:
            after = apply_patch(before, patch)
        except MethodError as exc:
            raise SetRefused(SetError("invalidPatch", exc.description)) from None
        unknown = sorted(set(after) - set(PROPERTIES))
        if unknown:
            raise SetRefused(
                SetError("invalidProperties", "not a PushSubscription property", tuple(unknown))
            )
        fixed = [p for p in _IMMUTABLE if after.get(p) != before[p]]
        if fixed:
            # RFC 8620 §7.2: immutable; a new URL or keys is a new subscription.
            raise SetRefused(SetError("invalidProperties", "cannot be changed", tuple(fixed)))
        verified = subscription.verified
        if after.get("verificationCode") != before["verificationCode"]:
            # RFC 8620 §7.2.2: the code must be the one sent in the PushVerification.
            code = after.get("verificationCode")
            if not isinstance(code, str) or not secrets.compare_digest(
                code.encode(), subscription.verification_code.encode()
            ):
                raise _invalid("verificationCode", "not the code sent")
            verified = True
        types = parse_types(after.get("types"))
        expires = subscription.expires
        answer: dict[str, Any] | None = None
        if after.get("expires") != before["expires"]:
            # RFC 8620 §7.2.2: renewing needs no verification; a clamped value is returned.
            expires = self._expires(after.get("expires"))
            if utc_date(expires) != after.get("expires"):
                answer = {"expires": utc_date(expires)}
        try:
            changed = await self.services.store.update_push_subscription(
                user.id, subscription.id, verified=verified, expires=expires, types=types
            )
        except NotFound:
            raise SetRefused(SetError("notFound", "no such push subscription")) from None
        return changed, answer
