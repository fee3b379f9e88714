"""Which webhook URLs and addresses a tool call may reach: the SSRF rules, free of any network call.

A URL passes :meth:`WebhookPolicy.check_url` (scheme, port, host) before anything is resolved; each address the
host resolves to must then pass :meth:`WebhookPolicy.pick_address`, and the caller connects to the address it
returns and to nothing else (no second resolution, so DNS rebinding cannot swap in another address).

Refused addresses: loopback, private, link-local, CGNAT, NAT64, 6to4, Teredo, multicast, reserved, documentation,
benchmarking and unspecified ones, and IPv4-mapped, IPv4-compatible and IPv4-translated forms of any of them.
This holds in allowlist mode too; only an address that the allowlist names itself (an IP or a CIDR) is admitted.

Allowlist entries (``CTXGATE_TOOL_ALLOWED_HOSTS``): a host pattern (``api.example.com``, ``*.example.com``), a
``host:port``, an IP (``203.0.113.7``, ``[2001:db8::1]:8443``) or a CIDR (``10.1.0.0/16``). With an allowlist, the
URL's host must match an entry; without one, any host with only public addresses may be called. Only ports 80 and
443 are allowed, unless an entry names the host with its port.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = frozenset({80, 443})


class WebhookRefused(ValueError):
    """The URL or an address it resolves to may not be called; the message says which rule refused it."""


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Listed rather than left to ``is_global`` alone, whose answers changed between Python versions; ``is_global``
# is still consulted as a backstop for anything the IANA registries add.
_REFUSED_V4 = _networks(
    "0.0.0.0/8",  # "this network", unspecified
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT shared address space
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, cloud metadata endpoints
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
)
_REFUSED_V6 = _networks(
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",  # NAT64
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) included
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation
    "5f00::/16",  # SRv6 SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local
    "ff00::/8",  # multicast
)


def parse_address(text: str) -> IPAddress | None:
    """The IP address ``text`` spells (brackets and an IPv6 zone id allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``); otherwise the address itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be called, or None for a public unicast address."""
    address = unmapped(address)
    refused = _REFUSED_V4 if isinstance(address, ipaddress.IPv4Address) else _REFUSED_V6
    network = next((n for n in refused if address in n), None)
    if network is not None:
        return f"{address} is in {network}, which tools may not reach"
    if not address.is_global or address.is_multicast or address.is_reserved:
        return f"{address} is not a public unicast address"
    return None


@dataclass(frozen=True)
class HostEntry:
    pattern: str
    port: int | None

    def admits(self, host: str, port: int) -> bool:
        if self.port is None and port not in DEFAULT_PORTS:
            return False
        if self.port is not None and port != self.port:
            return False
        return fnmatch.fnmatchcase(host, self.pattern)


@dataclass(frozen=True)
class WebhookTarget:
    """A URL that passed :meth:`WebhookPolicy.check_url`."""

    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    """The address when the URL names one (then nothing is resolved)."""


@dataclass(frozen=True)
class WebhookPolicy:
    hosts: tuple[HostEntry, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> WebhookPolicy:
        """Read allowlist entries; raises ``ValueError`` for one that is neither a host, a ``host:port``, an IP nor
        a CIDR (a typo must not silently admit or refuse everything)."""
        hosts: list[HostEntry] = []
        networks: list[IPNetwork] = []
        for raw in (e.strip().lower() for e in entries):
            if not raw:
                continue
            name, port = _split_port(raw)
            address = parse_address(name)
            if address is not None:
                address = unmapped(address)
                networks.append(ipaddress.ip_network(address))
                hosts.append(HostEntry(str(address), port))
                continue
            if "/" in name:
                try:
                    networks.append(ipaddress.ip_network(name, strict=False))
                except ValueError:
                    raise ValueError(f"tool allowlist entry {raw!r} is not a CIDR") from None
                continue
            if not name or any(c in name for c in "/@[]"):
                raise ValueError(f"tool allowlist entry {raw!r} is not a host, host:port, IP or CIDR")
            hosts.append(HostEntry(name, port))
        return cls(tuple(hosts), tuple(networks))

    @property
    def restricts_hosts(self) -> bool:
        return bool(self.hosts or self.networks)

    def check_url(self, url: str) -> WebhookTarget:
        """The URL's scheme, host and port, if they may be called; raises :class:`WebhookRefused`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookRefused("the tool endpoint is not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise WebhookRefused("the tool endpoint may not carry credentials in its URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise WebhookRefused("the tool endpoint's port is not a number") from None
        literal = parse_address(parts.hostname)
        host = str(unmapped(literal)) if literal is not None else _ascii_host(parts.hostname)
        if self.restricts_hosts:
            if not any(entry.admits(host, port) for entry in self.hosts) and not self._literal_admitted(literal, port):
                raise WebhookRefused(f"tool host {host!r} on port {port} is not on the allowlist")
        elif port not in DEFAULT_PORTS:
            raise WebhookRefused(f"tool port {port} is not allowed (only 80 and 443, unless allowlisted as host:port)")
        if literal is not None:
            reason = refusal(literal)
            if reason is not None and not any(unmapped(literal) in network for network in self.networks):
                raise WebhookRefused(reason)
        return WebhookTarget(parts.scheme, host, port, literal)

    def pick_address(self, addresses: list[str]) -> str:
        """The address to connect to: the first IPv4 one (Lambda's egress is IPv4), else the first. Every address
        must pass, so a resolver cannot slip a refused one in behind a public one. Raises :class:`WebhookRefused`."""
        parsed = [parse_address(a) for a in addresses]
        if not parsed or any(a is None for a in parsed):
            raise WebhookRefused("the tool host did not resolve to IP addresses")
        checked = [unmapped(a) for a in parsed if a is not None]
        for address in checked:
            if refusal(address) is not None and not any(address in network for network in self.networks):
                # Which address stays unsaid: the answer would let callers map internal DNS names.
                raise WebhookRefused("the tool host resolves to a non-public address, which tools may not reach")
        return str(next((a for a in checked if a.version == 4), checked[0]))

    def _literal_admitted(self, literal: IPAddress | None, port: int) -> bool:
        """An IP in an allowlisted CIDR (on the default ports) passes as a host too."""
        if literal is None or port not in DEFAULT_PORTS:
            return False
        return any(unmapped(literal) in network for network in self.networks)


def _ascii_host(hostname: str) -> str:
    """The host name as the resolver and the ``Host`` header will see it (IDNA for non-ASCII names)."""
    try:
        return hostname.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise WebhookRefused("the tool endpoint's host name is not valid") from None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` and ``[v6]:port`` split; a bare IPv6 address (several colons) has no port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, _port(rest[1:], entry) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, _port(port, entry)
    return entry, None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"tool allowlist entry {entry!r} has no valid port")
    return int(text)
