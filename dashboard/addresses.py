"""Which address a sign-in came from: the socket's peer, or the one a trusted proxy forwarded.

A client can put any X-Forwarded-For header on its request, so the header counts only when the
connection comes from a proxy the operator named (`engagement dashboard --trusted-proxy`, carried
to the server in ENGAGEMENT_TRUSTED_PROXIES; none by default). `engagement dashboard` also tells
the web server (uvicorn, through FORWARDED_ALLOW_IPS) to trust no proxy itself, so the socket's
address always reaches the page and the choice is made here, once.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from engagement.core.errors import ConfigError
from engagement.core.i18n import cli_lang, translate

TRUSTED_PROXIES_ENV = "ENGAGEMENT_TRUSTED_PROXIES"
LOOPBACK = "loopback"  # Streamlit reports no address for a loopback peer
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ClientAddress:
    address: str  # the key of the per-address sign-in limit
    socket: str  # the connection's peer ("loopback" for this machine)
    forwarded: bool = False  # `address` came from a trusted proxy's X-Forwarded-For

    def audit_details(self) -> dict:
        """For the audit log: the address, and the socket's beside any forwarded one."""
        if self.forwarded:
            return {"address": self.address, "socket_address": self.socket}
        return {"address": self.address}


def parse_trusted(text: str | None) -> tuple[_Network, ...]:
    """Addresses or networks (CIDR), comma-separated; a malformed one is a ConfigError."""
    networks = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(translate("cli.dashboard.bad_trusted_proxy", cli_lang(), got=repr(item))) from None
    return tuple(networks)


def trusted_proxies() -> tuple[_Network, ...]:
    return parse_trusted(os.environ.get(TRUSTED_PROXIES_ENV))


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def _trusted(ip, trusted: tuple[_Network, ...]) -> bool:
    return ip is not None and any(ip in net for net in trusted if net.version == ip.version)


def resolve(socket_ip: str | None, forwarded_for: list[str], trusted: tuple[_Network, ...]) -> ClientAddress:
    """The client's address. `socket_ip` None is a loopback peer (as Streamlit reports it).
    Behind trusted proxies the client is the nearest X-Forwarded-For entry that is not itself a
    trusted proxy (each proxy appends the peer it saw, so entries further left are the client's
    own claims); from any other peer the header is ignored."""
    socket = socket_ip if socket_ip else LOOPBACK
    peer = _ip(socket_ip) if socket_ip else ipaddress.ip_address("127.0.0.1")
    if not forwarded_for or not _trusted(peer, trusted):
        return ClientAddress(socket, socket)
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break  # a malformed entry: nothing left of it can be relied on
        if not _trusted(ip, trusted):
            return ClientAddress(str(ip), socket, forwarded=True)
    return ClientAddress(socket, socket)
