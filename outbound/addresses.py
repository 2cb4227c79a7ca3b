"""Which IP addresses an outbound request may reach.

`ipaddress`'s `is_global` is the base rule (it refuses 100.64.0.0/10 and 198.18.0.0/15,
which `is_private` lets through). IPv6 forms that carry an IPv4 address (IPv4-mapped,
6to4, NAT64) are judged by the IPv4 address inside as well, because the network routes
them to it. Link-local addresses (cloud instance metadata among them) and the addresses
that are never a real destination are refused even where private targets are allowed.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Reachable from an EC2 instance without a route: the metadata services (IPv4 and IPv6).
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is a mapped, 6to4 or NAT64 form."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` may not be reached, or None when it may.

    An IPv6 form of an IPv4 address is judged by the IPv4 address it reaches.
    """
    if address.version == 6 and address.scope_id:
        return f"points to an address with a zone id ({address})"
    inner = embedded_ipv4(address)
    candidate = address if inner is None else inner
    shown = str(address) if inner is None else f"{address}, which is {inner}"
    if candidate.is_link_local or candidate in METADATA:
        return f"points to a forbidden address ({shown}: link-local or instance metadata)"
    if (
        candidate.is_multicast
        or candidate.is_unspecified
        or (candidate.is_reserved and not candidate.is_loopback)
        or (candidate.version == 4 and candidate in THIS_NETWORK)
    ):
        return f"points to a forbidden address ({shown}: not a unicast destination)"
    if not allow_private and not candidate.is_global:
        return f"points to a private, loopback or other non-global address ({shown}), not allowed here"
    return None
