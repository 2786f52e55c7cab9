"""Where webhooks may post: the operator's allow-list of hosts and address ranges (``webhooks.allowed_targets``).

A subscription's URL is checked against it when the subscription is created, and every delivery connects only
to addresses it allows (the resolver below filters what DNS answers), so a name that later resolves elsewhere
(DNS rebinding) cannot turn a subscription against the service's own network. Nothing is allowed by default.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
MAX_URL_CHARS = 2048
RESOLVE_SECONDS = 5  # a subscription request waits at most this long for DNS


class TargetRefused(Exception):
    """A webhook URL the service will not post to; ``status`` is 400 (not a usable URL) or 403 (not allowed)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1 to the network
    return mapped or address


class TargetPolicy:
    """The parsed allow-list. Entries: ``hooks.example.com`` (that host), ``*.example.com`` (its subdomains),
    ``10.1.2.3`` or ``2001:db8::1`` (that address), ``10.0.0.0/8`` (a range). ValueError names a bad entry."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.names: set[str] = set()
        self.suffixes: set[str] = set()
        self.networks: list[Network] = []
        for entry in entries:
            self._add(entry.strip().lower())

    def _add(self, entry: str) -> None:
        if "/" in entry or _address(entry) is not None:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError as error:
                raise ValueError(f"{entry!r} is not an address or CIDR range: {error}") from None
        elif entry.startswith("*.") and HOST_NAME.match(entry[2:]):
            self.suffixes.add(entry[1:])
        elif HOST_NAME.match(entry):
            self.names.add(entry)
        else:
            raise ValueError(f"{entry!r} is neither a host name, *.domain, an address nor a CIDR range")

    def permits_name(self, host: str) -> bool:
        """The host is allowed by name: any address it resolves to may be used."""
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def permits_address(self, address: Address) -> bool:
        return any(address.version == network.version and address in network for network in self.networks)

    def refuses_literal(self, url_text: str) -> bool:
        """The URL's host is an address the policy does not allow (a name is checked as it is resolved)."""
        literal = _address(URL(url_text).raw_host or "")
        return literal is not None and not self.permits_address(literal)

    async def check(self, url_text: str) -> URL:
        """The URL, parsed, once it is one the service may post to; TargetRefused (400 or 403) otherwise."""
        url = parse_target(url_text)
        host = url.raw_host or ""
        literal = _address(host)
        if literal is not None:
            if not self.permits_address(literal):
                raise self._refusal(url, f"the address {literal}")
            return url
        if self.permits_name(host):
            return url
        if not self.networks:  # no range could hold its addresses: no need to ask DNS
            raise self._refusal(url, f"the host {host}")
        addresses = await resolve(host, url.port or 0)
        refused = [address for address in addresses if not self.permits_address(address)]
        if refused:
            raise self._refusal(url, f"{host} resolves to {refused[0]}, which")
        return url

    @staticmethod
    def _refusal(url: URL, what: str) -> TargetRefused:
        return TargetRefused(f"Webhook target {url.host} refused: {what} is not in the operator's allow-list "
                             f"(webhooks.allowed_targets, docs/OPERATIONS.md)", 403)


def parse_target(url_text: str) -> URL:
    """An absolute http(s) URL with a host and without credentials; TargetRefused (400) otherwise."""
    if len(url_text) > MAX_URL_CHARS:
        raise TargetRefused(f"The webhook URL is longer than {MAX_URL_CHARS} characters", 400)
    try:
        url = URL(url_text)
    except ValueError as error:
        raise TargetRefused(f"The webhook URL is not a valid URL: {error}", 400) from error
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise TargetRefused("The webhook URL must be an absolute http:// or https:// URL with a host", 400)
    if url.raw_user is not None or url.raw_password is not None:
        # a URL is shown to everyone who may list the collection's subscriptions; the secret is never shown
        raise TargetRefused("The webhook URL must not carry credentials: the signature authenticates "
                            "deliveries (the subscription's secret)", 400)
    return url


async def resolve(host: str, port: int) -> list[Address]:
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as error:
        raise TargetRefused(f"The webhook host {host} did not resolve within {RESOLVE_SECONDS} seconds", 400) from error
    except (OSError, UnicodeError) as error:
        raise TargetRefused(f"The webhook host {host} cannot be resolved: {error}", 400) from error
    return [address for *_, sockaddr in found if (address := _address(sockaddr[0])) is not None]


class AllowListResolver(AbstractResolver):
    """aiohttp's resolver, keeping only addresses the policy allows: deliveries connect nowhere else."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        if self._policy.permits_name(host):
            return found
        allowed = [result for result in found if self._permits(result)]
        if not allowed:
            raise OSError(f"{host} resolves to no address of the allow-list (webhooks.allowed_targets)")
        return allowed

    def _permits(self, result: dict[str, Any]) -> bool:
        address = _address(result["host"])
        return address is not None and self._policy.permits_address(address)

    async def close(self) -> None:
        await self._resolver.close()
