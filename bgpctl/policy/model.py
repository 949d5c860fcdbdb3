"""The policy model: every knob bgpctl has, validated once, immutable afterwards.

Field names are the YAML keys (snake_case). Every model refuses unknown keys, is frozen, and
numbers/booleans are strict (YAML ``"10"`` is not ``10``). Cross-references between sections
(a path naming a region, a service naming an SLA class, ...) are checked in
:mod:`bgpctl.policy.xref`, so that all problems of a file are reported together.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bgpctl import events

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _invalid(message: str, hint: str) -> PydanticCustomError:
    """A validation error whose hint says what to do; bgpctl.policy.load renders it as 'message (hint)'."""
    return PydanticCustomError("bgpctl", "{message}: {hint}", {"message": message, "hint": hint})


def _shown(value: object) -> str:
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else repr(value)


def _address_text(family: int | None) -> str:
    return {4: "an IPv4 address", 6: "an IPv6 address"}.get(family or 0, "an IP address")


def _address_example(family: int | None) -> str:
    return {4: "like 192.0.2.1", 6: "like 2001:db8::1"}.get(family or 0, "like 192.0.2.1 or 2001:db8::1")


def _check_address(family: int | None) -> object:
    """Before-validator: one clear error for a bad address instead of one per union member.

    Strings that parse (of the right family) and non-strings of the address types pass through unchanged,
    so the field's own type and JSON schema stay what they were.
    """

    def check(value: object) -> object:
        if isinstance(value, IPv4Address | IPv6Address):
            return value
        if not isinstance(value, str):
            raise _invalid(
                f"expected {_address_text(family)}, got {_shown(value)}", f"write it {_address_example(family)}"
            )
        try:
            parsed = ipaddress.ip_address(value)
        except ValueError:
            hint = (
                "write the address without a prefix length" if "/" in value else f"write it {_address_example(family)}"
            )
            raise _invalid(f"'{value}' is not {_address_text(family)}", hint) from None
        if isinstance(parsed, IPv6Address) and parsed.scope_id is not None:
            raise _invalid(
                f"'{value}' has a zone index (%{parsed.scope_id})",
                "write the address without it: bgpctl peers over, probes from and announces global addresses",
            )
        if family is not None and parsed.version != family:
            raise _invalid(
                f"'{value}' is an IPv{parsed.version} address; this field takes {_address_text(family)}",
                f"write it {_address_example(family)}",
            )
        return value

    return check


def _check_network(value: object) -> object:
    """Before-validator for prefixes: a bad prefix gets one error, with the corrected prefix when it is a
    host-bits mistake."""
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise _invalid(f"expected an IP prefix, got {_shown(value)}", "write it like 203.0.113.0/24")
    try:
        ipaddress.ip_network(value)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _invalid(
                f"'{value}' is not an IP prefix", "write it as ADDRESS/LENGTH like 203.0.113.0/24 or 2001:db8::/48"
            ) from None
        raise _invalid(f"'{value}' has host bits set", f"did you mean {loose}?") from None
    return value


IPAddressField = Annotated[IPAddress, BeforeValidator(_check_address(None))]
IPv4AddressField = Annotated[IPv4Address, BeforeValidator(_check_address(4))]
IPv6AddressField = Annotated[IPv6Address, BeforeValidator(_check_address(6))]
IPNetworkField = Annotated[IPNetwork, BeforeValidator(_check_network)]

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
"""Names of peers, regions, paths, services and SLA classes: lower case, digits, '-' and '_'."""

ASN = Annotated[int, Field(ge=1, le=4294967295)]
Percent = Annotated[float, Field(ge=0, le=100)]
Millis = Annotated[float, Field(ge=0, le=60000)]
Seconds = Annotated[float, Field(ge=0, le=86400)]

# Matched with fullmatch (never match + '$', which also matches before a trailing newline: a community
# "7224:7300\n" would split one ExaBGP command into two). [0-9], not \d: no other scripts' digits.
_COMMUNITY = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
_LARGE_COMMUNITY = re.compile(r"([0-9]{1,10}):([0-9]{1,10}):([0-9]{1,10})")
_WELL_KNOWN = {"no-export", "no-advertise", "no-export-subconfed", "blackhole", "graceful-shutdown"}


_DESCRIPTION = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]{0,200}")


def _check_description(value: str) -> str:
    if not _DESCRIPTION.fullmatch(value):
        raise _invalid(
            "a description holds a control character or is longer than 200 characters",
            "write one line of plain text (it goes into ExaBGP's configuration)",
        )
    return value


Description = Annotated[str, AfterValidator(_check_description)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def is_community(value: str) -> bool:
    """A standard community ``ASN:VALUE`` (each 0-65535) or a well-known name. The speaker checks with this too."""
    if value in _WELL_KNOWN:
        return True
    m = _COMMUNITY.fullmatch(value)
    return m is not None and int(m.group(1)) <= 65535 and int(m.group(2)) <= 65535


def is_large_community(value: str) -> bool:
    """A large community ``GLOBAL:LOCAL1:LOCAL2`` (each 0-4294967295). The speaker checks with this too."""
    m = _LARGE_COMMUNITY.fullmatch(value)
    return m is not None and all(int(g) <= 4294967295 for g in m.groups())


def _check_community(value: str) -> str:
    if not is_community(value):
        raise _invalid(
            f"'{value}' is not a standard community",
            f"write ASN:VALUE with both parts 0-65535, or one of {', '.join(sorted(_WELL_KNOWN))}",
        )
    return value


def _check_large_community(value: str) -> str:
    if not is_large_community(value):
        raise _invalid(f"'{value}' is not a large community", "write GLOBAL:LOCAL1:LOCAL2, each 0-4294967295")
    return value


Community = Annotated[
    str, AfterValidator(_check_community), Field(description="standard community ASN:VALUE or a well-known name")
]
LargeCommunity = Annotated[
    str, AfterValidator(_check_large_community), Field(description="large community GLOBAL:LOCAL1:LOCAL2")
]


# --------------------------------------------------------------------------------------------
# speaker and peers


class ExabgpSettings(_Model):
    """How bgpctl runs ExaBGP (it renders the configuration; the operator never edits it)."""

    binary: str = Field("exabgp", description="ExaBGP executable (a path, or a name on PATH)")
    run_dir: str = Field("/run/bgpctl", description="where the rendered config (mode 0600) and FIFOs live")
    user: str = Field("root", description="exabgp.daemon.user: must be able to read the rendered config")
    graceful_restart: Annotated[int, Field(ge=0, le=4095)] = Field(
        120, description="GR restart time in seconds, 0 = no GR; with GR, End-of-RIB is sent manually after resync"
    )
    group_updates: bool = True


class Speaker(_Model):
    local_as: ASN
    router_id: IPv4AddressField
    local_addresses: list[IPAddressField] = Field(min_length=1, description="addresses the BGP sessions use")
    exabgp: ExabgpSettings = ExabgpSettings()


class PeerRole(enum.StrEnum):
    TRANSIT_GATEWAY = "transit-gateway"
    EDGE = "edge"


class Family(enum.StrEnum):
    IPV4_UNICAST = "ipv4-unicast"
    IPV6_UNICAST = "ipv6-unicast"

    @classmethod
    def of(cls, network: IPNetwork) -> Family:
        """The address family a prefix belongs to (the one a session must carry to be sent it)."""
        return cls.IPV4_UNICAST if network.version == 4 else cls.IPV6_UNICAST

    @property
    def words(self) -> tuple[str, str]:
        """AFI and SAFI as ExaBGP spells them: ``("ipv4", "unicast")``."""
        afi, safi = self.value.split("-")
        return afi, safi


class AddPath(enum.StrEnum):
    OFF = "off"
    SEND = "send"
    RECEIVE = "receive"
    BOTH = "send/receive"


class Timers(_Model):
    hold_time: Annotated[int, Field(ge=3, le=65535)] = Field(9, description="BGP hold time, seconds")

    @model_validator(mode="before")
    @classmethod
    def _no_connect_retry(cls, data: Any) -> Any:
        if isinstance(data, dict) and "connect_retry" in data:
            raise _invalid(
                "timers.connect_retry is no longer a policy field",
                "ExaBGP 5 has no per-neighbour connect retry, it reconnects on its own back-off "
                "of 1 s growing to 60 s: delete connect_retry from the peer's timers",
            )
        return data


class MaxPrefixAction(enum.StrEnum):
    """What bgpctl does when a peer sends more prefixes than its ``max_prefixes.limit``."""

    IGNORE = "ignore"  # keep the session, store no further prefixes, warn (once per session)
    TEARDOWN = "teardown"  # warn and close the session with Cease / Maximum Number of Prefixes Reached


class MaxPrefixes(_Model):
    """Bounds what a peer may send us. bgpctl uses no received route for its decisions, so the default
    keeps sessions up and only stops storing."""

    limit: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        1000, description="received prefixes (per peer, all families, path ids counted apart) kept at most"
    )
    action: MaxPrefixAction = MaxPrefixAction.IGNORE


class SecretRef(_Model):
    """Where a secret comes from. Exactly one of ``file`` / ``env``; never the secret itself."""

    file: str | None = Field(None, description="path of a file holding the secret (mode 0600 advised)")
    env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        None, description="name of an environment variable holding the secret"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise _invalid(
                "give exactly one of 'file' or 'env'",
                "name the file or the environment variable that holds the password; "
                "the secret itself never goes in the policy",
            )
        return self


class Peer(_Model):
    name: Name
    address: IPAddressField
    peer_as: ASN
    role: PeerRole
    local_address: IPAddressField | None = Field(
        None, description="default: the speaker's first local address of the same family"
    )
    description: Description = ""
    timers: Timers = Timers()
    md5_password: SecretRef | None = None
    ttl_security: bool = Field(False, description="GTSM (RFC 5082): send TTL 255, accept only TTL 255")
    families: list[Family] = Field(default_factory=lambda: [Family.IPV4_UNICAST], min_length=1)
    add_path: AddPath = AddPath.OFF
    max_prefixes: MaxPrefixes = MaxPrefixes()


# --------------------------------------------------------------------------------------------
# regions, paths


class Path(_Model):
    """One way into a region, e.g. the Direct Connect interconnect or the VPN backup."""

    peer: Name = Field(description="the transit-gateway peer this path's routes go to")
    next_hop: IPAddressField = Field(description="next hop for Connect prefixes announced to the edge: the TGW")
    probe_source: IPAddressField = Field(description="source address of this path's probes (policy routing key)")
    table: Annotated[int, Field(ge=1, le=4294967295)] = Field(
        description="routing table that pins probes from probe_source to next_hop"
    )
    priority: Annotated[int, Field(ge=0, le=100)] = Field(
        0, description="lower is preferred among the paths of one region (interconnect 0, VPN 10)"
    )
    next_hop_v6: IPv6AddressField | None = Field(
        None, description="dual-stack path: the IPv6 next hop of its IPv6 routes, when next_hop is IPv4"
    )
    probe_source_v6: IPv6AddressField | None = Field(
        None, description="dual-stack path: source of its IPv6 probes (targets' address_v6), when probe_source is IPv4"
    )
    peer_v6: Name | None = Field(
        None,
        description="the transit-gateway peer of this path's IPv6 routes when they go over an IPv6 session of "
        "their own; default: 'peer' (MP-BGP IPv6 unicast over its session)",
    )

    @model_validator(mode="after")
    def _v6_fields(self) -> Path:
        for field, value, base in (
            ("next_hop_v6", self.next_hop_v6, self.next_hop),
            ("probe_source_v6", self.probe_source_v6, self.probe_source),
        ):
            if value is not None and base.version == 6:
                name = field.removesuffix("_v6")
                raise _invalid(
                    f"{field} is given but {name} {base} is already IPv6",
                    f"a path has one address per family: make {name} the IPv4 one, or remove {field}",
                )
        return self

    def next_hop_for(self, version: int) -> IPAddress | None:
        """The next hop of this path's routes of IP ``version`` (4 or 6); None if the path has none."""
        return _of_version(version, self.next_hop, self.next_hop_v6)

    def probe_source_for(self, version: int) -> IPAddress | None:
        """The source of this path's probes to targets of IP ``version``; None if the path has none."""
        return _of_version(version, self.probe_source, self.probe_source_v6)

    def peer_for(self, version: int) -> str:
        """The transit-gateway peer this path's routes of IP ``version`` go to."""
        return self.peer_v6 if version == 6 and self.peer_v6 is not None else self.peer


def _of_version(version: int, first: IPAddress, v6: IPv6Address | None) -> IPAddress | None:
    """Of a field that may be of either family and its ``_v6`` companion: the address of IP ``version``."""
    if first.version == version:
        return first
    return v6 if version == 6 else None


class Region(_Model):
    description: str = ""
    paths: dict[Name, Path] = Field(min_length=1)


# --------------------------------------------------------------------------------------------
# services


class ProbeProtocol(enum.StrEnum):
    ICMP = "icmp"
    UDP = "udp"  # STAMP / TWAMP-light
    TCP = "tcp"  # connect time


_DSCP_NAMES = {
    "be": 0,
    "cs1": 8,
    "af11": 10,
    "af21": 18,
    "af31": 26,
    "af41": 34,
    "cs3": 24,
    "cs4": 32,
    "cs5": 40,
    "ef": 46,
    "cs6": 48,
    "cs7": 56,
}


def _dscp_type(value: object) -> object:
    """One error for a DSCP of the wrong type, instead of one per member of ``int | str``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid(f"expected a DSCP name or number, got {_shown(value)}", "write a name like ef or a number 0-63")
    return value


class ProbeTarget(_Model):
    address: IPAddressField
    address_v6: IPv6AddressField | None = Field(
        None,
        description="dual-stack region: the IPv6 address probed as well, when address is IPv4; the IPv6 routes "
        "then follow the IPv6 probes (each family judged on its own)",
    )
    protocol: ProbeProtocol = ProbeProtocol.UDP
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None, description="UDP: STAMP reflector port (default 862); TCP: required"
    )
    dscp: Annotated[int | str, BeforeValidator(_dscp_type)] = Field(
        "be", description="DSCP name (ef, af41, cs3, ...) or number 0-63"
    )

    @field_validator("dscp")
    @classmethod
    def _dscp(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if not 0 <= v <= 63:
                raise _invalid(f"DSCP {v} is out of range", "use 0-63 or a name like ef, af41, cs3")
        elif v.lower() not in _DSCP_NAMES:
            raise _invalid(f"unknown DSCP name '{v}'", f"use a number 0-63 or one of {', '.join(sorted(_DSCP_NAMES))}")
        return v

    @model_validator(mode="after")
    def _port(self) -> ProbeTarget:
        if self.protocol is ProbeProtocol.TCP and self.port is None:
            raise _invalid("a tcp probe needs 'port'", "add the TCP port to connect to, e.g. port: 443")
        if self.protocol is ProbeProtocol.ICMP and self.port is not None:
            raise _invalid("an icmp probe takes no 'port'", "remove it")
        if self.address_v6 is not None and self.address.version == 6:
            raise _invalid(
                f"address_v6 is given but address {self.address} is already IPv6",
                "make address the IPv4 one, or remove address_v6",
            )
        return self

    def address_for(self, version: int) -> IPAddress | None:
        """The address probed over IP ``version``; None if this target has none of that family."""
        return _of_version(version, self.address, self.address_v6)

    @property
    def dscp_value(self) -> int:
        return self.dscp if isinstance(self.dscp, int) else _DSCP_NAMES[self.dscp.lower()]

    @property
    def effective_port(self) -> int | None:
        if self.protocol is ProbeProtocol.UDP and self.port is None:
            return 862
        return self.port


class ProbeSettings(_Model):
    interval_ms: Annotated[float, Field(ge=20, le=60000)] = Field(
        100, description="probe spacing per path; 20 ms is the fastest"
    )
    timeout_ms: Annotated[float, Field(ge=10, le=60000)] = Field(
        1000, description="a reply later than this counts as lost; 10 ms is the shortest"
    )
    targets: dict[Name, ProbeTarget] = Field(min_length=1, description="per region name")


class Mode(enum.StrEnum):
    ACTIVE_ACTIVE = "active-active"
    ACTIVE_STANDBY = "active-standby"


MAX_WEIGHT = 1000
"""The largest weight of a region: its link bandwidth (weight x 1 Mbit/s) stays exact in BGP's 32-bit float."""
Weight = Annotated[int, Field(ge=0, le=MAX_WEIGHT)]
Weights = dict[Name, Weight]
"""Region -> share of a service's traffic (relative: 80/20, 95/5 and 4/1 are what they say)."""


class Service(_Model):
    description: str = ""
    prefixes: list[IPNetworkField] = Field(min_length=1)
    sla: Name
    mode: Mode = Mode.ACTIVE_ACTIVE
    order: list[Name] = Field(default_factory=list, description="active-standby: regions, most preferred first")
    weights: Weights | None = Field(
        None,
        description="active-active: each region's share of the traffic (0-1000, relative), sent to the edge as "
        "the BGP link-bandwidth extended community; omit for an equal split",
    )
    probe: ProbeSettings


# --------------------------------------------------------------------------------------------
# SLA classes


class Thresholds(_Model):
    """A path crosses into this level when ANY given measurement crosses its limit."""

    rtt_ms: Millis | None = Field(None, description="window RTT p95 above this")
    jitter_ms: Millis | None = Field(None, description="RFC 3550 jitter above this")
    loss_pct: Percent | None = Field(None, description="window loss above this")
    mos_below: Annotated[float, Field(ge=1, le=4.5)] | None = Field(None, description="MOS below this")


class Hysteresis(_Model):
    down_after_lost: Annotated[int, Field(ge=1, le=1000)] = Field(
        5, description="this many consecutive lost probes take a path down at once (fast path)"
    )
    window_s: Annotated[float, Field(ge=0.1, le=3600)] = Field(
        5, description="length of the sliding window the soft thresholds are measured on; 0.1 s is the shortest"
    )
    min_samples: Annotated[int, Field(ge=1, le=100000)] = Field(
        20, description="a window needs this many settled samples before soft thresholds are judged"
    )
    rise_s: Seconds = Field(10, description="measurements must stay clean this long before a state improves")
    recovery_margin_pct: Annotated[float, Field(ge=0, lt=100)] = Field(
        20, description="to recover, each measurement must be this much better than the threshold it crossed"
    )
    hold_down_s: Seconds = Field(30, description="a path that went down stays down at least this long")
    min_dwell_s: Seconds = Field(5, description="minimum time in any state before a soft change")


class SlaClass(_Model):
    description: str = ""
    degraded: Thresholds
    down: Thresholds
    hysteresis: Hysteresis = Hysteresis()


# --------------------------------------------------------------------------------------------
# actions


class PathState(enum.StrEnum):
    """What plan() makes of a path for one service. decide() yields the health underneath."""

    PREFERRED = "preferred"
    STANDBY = "standby"
    DEGRADED = "degraded"
    DOWN = "down"


class Announce(_Model):
    med: Annotated[int, Field(ge=0, le=4294967295)] | None = None
    prepend: Annotated[int, Field(ge=0, le=10)] = Field(0, description="extra copies of the local AS")
    communities: list[Community] = Field(default_factory=list)
    large_communities: list[LargeCommunity] = Field(default_factory=list)
    withdraw: Literal[False] = False


class Withdraw(_Model):
    withdraw: Literal[True]


Action = Announce | Withdraw


def _action_tag(value: object) -> str:
    """Pick the model of an action by its ``withdraw`` key, so errors speak of one model, not both."""
    withdraw = value.get("withdraw") if isinstance(value, dict) else getattr(value, "withdraw", None)
    return "Withdraw" if withdraw is True else "Announce"


ActionField = Annotated[
    Annotated[Announce, Tag("Announce")] | Annotated[Withdraw, Tag("Withdraw")], Discriminator(_action_tag)
]
"""An :data:`Action` as a field: ``{withdraw: true}`` is a Withdraw, anything else an Announce."""


class RoleActions(_Model):
    edge: ActionField
    transit_gateway: ActionField = Field(alias="transit-gateway")

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    def for_role(self, role: PeerRole) -> Action:
        return self.edge if role is PeerRole.EDGE else self.transit_gateway


class Actions(_Model):
    preferred: RoleActions
    standby: RoleActions
    degraded: RoleActions
    down: RoleActions

    def get(self, state: PathState, role: PeerRole) -> Action:
        return getattr(self, state.value).for_role(role)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# corporate side, guards, overrides


class Corporate(_Model):
    """The agents' prefixes, announced to every TGW so that return traffic is symmetric."""

    prefixes: list[IPNetworkField] = Field(min_length=1)
    next_hop: IPAddressField = Field(description="where TGWs send return traffic: the corporate edge")
    next_hop_v6: IPv6AddressField | None = Field(
        None, description="the IPv6 next hop of the IPv6 corporate prefixes, when next_hop is IPv4"
    )
    follow_service: Name = Field(description="the service whose path states drive the TGW announcements")

    @model_validator(mode="after")
    def _v6_next_hop(self) -> Corporate:
        if self.next_hop_v6 is not None and self.next_hop.version == 6:
            raise _invalid(
                f"next_hop_v6 is given but next_hop {self.next_hop} is already IPv6",
                "make next_hop the IPv4 one, or remove next_hop_v6",
            )
        return self

    def next_hop_for(self, version: int) -> IPAddress | None:
        """The next hop of the corporate prefixes of IP ``version``; None if there is none."""
        return _of_version(version, self.next_hop, self.next_hop_v6)


class Guards(_Model):
    allowlist: list[IPNetworkField] = Field(min_length=1, description="nothing outside these is ever announced")
    fail_static: bool = Field(True, description="if every path of a service is down, keep the last good routes")
    max_route_changes_per_minute: Annotated[int, Field(ge=1, le=100000)] = 60


class Drain(_Model):
    region: Name
    path: Name | None = Field(None, description="omit to drain every path of the region")
    service: Name | None = Field(None, description="omit to drain the region for every service")


class Overrides(_Model):
    drain: list[Drain] = Field(default_factory=list, description="treat as standby: de-prefer, keep routes")
    pin: dict[Name, Name] = Field(default_factory=dict, description="service -> region preferred while not down")
    freeze: bool = Field(False, description="announce nothing new: the current routes stay as they are")
    weights: dict[Name, Weights] = Field(
        default_factory=dict, description="service -> region weights used instead of the service's own"
    )


# --------------------------------------------------------------------------------------------
# outside signals (bgpctl.signals; docs/signals.md)


class MarkState(enum.StrEnum):
    """What an outside signal can say of a region or a path (decide()'s rule 0b)."""

    DEGRADED = "degraded"
    DOWN = "down"


_URL_CHARS = re.compile(r"[!-~]{1,2048}")  # printable ASCII, no space: one URL, never two lines


def _http_url(example: str, credentials_hint: str) -> Callable[[str], str]:
    """The check of an http(s) URL the daemon will fetch from or post to (signals, webhooks): printable
    ASCII, a host, a real port, no credentials (``credentials_hint`` says what to do instead), no #fragment."""

    def check(value: str) -> str:
        example_text = f"write it like {example}"
        if not _URL_CHARS.fullmatch(value):
            raise _invalid("a URL is 1-2048 printable ASCII characters without spaces", example_text)
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise _invalid(f"'{value}' is not an http:// or https:// URL", example_text)
        if parts.username is not None or parts.password is not None:
            raise _invalid("the URL holds a user name or password", credentials_hint)
        try:
            port = parts.port
        except ValueError:
            raise _invalid(
                f"'{value}' has a bad port", "use a port 1-65535, or none for the scheme's default"
            ) from None
        if not parts.hostname or port == 0:
            raise _invalid(f"'{value}' names no host (or port 0)", example_text)
        if parts.fragment:
            raise _invalid(f"'{value}' has a #fragment, which is never sent to the server", "remove it")
        return value

    return check


_check_signal_url = _http_url(
    "https://health-relay.example.net/v1/regions.json",
    "credentials in a policy end up in logs and status: serve the signal without them "
    "(a relay on a trusted network, or TLS to a relay that needs none)",
)


def _check_signal_file(value: str) -> str:
    if not value.startswith("/") or "\x00" in value or len(value) > 4096:
        raise _invalid(
            f"'{value}' is not an absolute path", "write the flag file's full path, like /run/bgpctl/flags/use1"
        )
    if ".." in value.split("/"):
        raise _invalid(f"'{value}' has a '..' component", "write the path without '..'")
    return value


def _check_reason(value: str) -> str:
    if not value.strip():
        raise _invalid(
            "the reason is empty", "say why, e.g. 'change freeze: use1 maintenance' (log and status show it)"
        )
    return value


class SignalPresence(_Model):
    """What an empty flag file marks by its presence alone."""

    region: Name
    path: Name | None = Field(None, description="omit to mark every path of the region")
    state: MarkState = MarkState.DOWN
    reason: Annotated[Description, AfterValidator(_check_reason)] = Field(
        description="the reason shown in the log and in status, e.g. 'change freeze: use1 maintenance'"
    )


class FileSignal(_Model):
    """A flag file: absent says nothing; present and empty marks ``present``; present with a document
    (JSON or YAML, the shape of docs/signals.md) marks what the document says."""

    kind: Literal["file"]
    description: Description = ""
    path: Annotated[str, AfterValidator(_check_signal_file)] = Field(description="the flag file's absolute path")
    interval_s: Annotated[float, Field(ge=0.2, le=3600)] = Field(2, description="how often the file is read")
    max_age_s: Annotated[float, Field(gt=0, le=86400)] | None = Field(
        None, description="ignore the file when its generated_at (else its mtime) is older; omit: never stale"
    )
    max_bytes: Annotated[int, Field(ge=256, le=1048576)] = Field(65536, description="a bigger file is ignored")
    present: SignalPresence | None = Field(None, description="what an empty file marks")


class HttpSignal(_Model):
    """An HTTP(S) JSON source polled every ``interval_s`` (the document shape of docs/signals.md)."""

    kind: Literal["http"]
    description: Description = ""
    url: Annotated[str, AfterValidator(_check_signal_url)] = Field(
        description="http:// or https:// URL of the JSON document"
    )
    interval_s: Annotated[float, Field(ge=1, le=3600)] = Field(10, description="how often the URL is fetched")
    timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        2, description="the whole fetch (connect, TLS, answer) must end within this"
    )
    max_age_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        description="ignore the document when its generated_at (else the last good fetch) is older"
    )
    max_bytes: Annotated[int, Field(ge=256, le=1048576)] = Field(65536, description="a bigger answer is ignored")

    @model_validator(mode="after")
    def _timing(self) -> HttpSignal:
        if self.timeout_s >= self.interval_s:
            raise _invalid(
                f"timeout_s {self.timeout_s:g} is not below interval_s {self.interval_s:g}",
                "a fetch must end before the next one is due: lower timeout_s or raise interval_s",
            )
        if self.max_age_s <= self.interval_s:
            raise _invalid(
                f"max_age_s {self.max_age_s:g} is not above interval_s {self.interval_s:g}",
                "a fresh document would go stale between two fetches: use at least two intervals",
            )
        return self


_SIGNAL_KINDS = {"file": "FileSignal", "http": "HttpSignal"}


def _signal_kind(value: object) -> object:
    """Before-validator: one clear error for a missing or unknown ``kind`` (not one per union member)."""
    if isinstance(value, dict) and value.get("kind") not in _SIGNAL_KINDS:
        kind = value.get("kind")
        raise _invalid(
            "a signal needs 'kind: file' or 'kind: http'"
            if kind is None
            else f"unknown signal kind '{kind}'"
            if isinstance(kind, str)
            else f"expected 'file' or 'http' for kind, got {_shown(kind)}",
            "file: a flag file (path); http: an HTTP(S) JSON source (url, max_age_s)",
        )
    return value


def _signal_tag(value: object) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return _SIGNAL_KINDS.get(kind) if isinstance(kind, str) else None


SignalField = Annotated[
    Annotated[FileSignal, Tag("FileSignal")] | Annotated[HttpSignal, Tag("HttpSignal")],
    Discriminator(_signal_tag),
    BeforeValidator(_signal_kind),
]
"""A signal of the ``signals`` section, chosen by its ``kind``."""
Signal = FileSignal | HttpSignal


def _check_group(value: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise _invalid(
            f"'{value}' is not a Unix group name", "use lower case letters, digits, '-' and '_', like bgpctl"
        )
    return value


class Control(_Model):
    group: Annotated[str, AfterValidator(_check_group)] | None = Field(
        None,
        description="Unix group that may use the control socket (mode 0660); omit for root only (mode 0600)",
    )


# --------------------------------------------------------------------------------------------
# hooks (bgpctl.hooks, docs/hooks.md)


class HookEvent(enum.StrEnum):
    """The event types a hook can subscribe to; the names are bgpctl.events' (one source of truth)."""

    PATH_STATE = events.PATH_STATE
    ROUTE_CHANGE = events.ROUTE_CHANGE
    REGION_LOST = events.REGION_LOST
    REGION_REGAINED = events.REGION_REGAINED
    OVERRIDE_SET = events.OVERRIDE_SET
    OVERRIDE_EXPIRED = events.OVERRIDE_EXPIRED
    POLICY_RELOAD = events.POLICY_RELOAD


EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_ARG = re.compile(r"[^\x00]{1,4096}")


def _check_argv(value: list[str]) -> list[str]:
    if not value[0].startswith("/"):
        raise _invalid(
            f"the program '{value[0]}' is not an absolute path",
            "write the full path, e.g. /usr/local/bin/connect-traffic-distribution: hooks run without a shell "
            "and do not search PATH",
        )
    for i, arg in enumerate(value):
        if not _ARG.fullmatch(arg):
            raise _invalid(f"argument {i} is empty, longer than 4096 characters or holds a NUL", "fix that argument")
    return value


_check_hook_url = _http_url(
    "https://hooks.example.net/bgpctl",
    "remove it: the receiver authenticates bgpctl by the signature made with 'secret'",
)


class _HookBase(_Model):
    events: list[HookEvent] = Field(
        default_factory=lambda: list(HookEvent), min_length=1, description="event types sent to it; default all"
    )
    timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        10, description="one attempt may take this long; then it is abandoned (exec: its process group killed)"
    )
    queue: Annotated[int, Field(ge=1, le=10000)] = Field(
        100, description="events waiting for this hook at most; more are dropped (counted and logged)"
    )


class ExecHook(_HookBase):
    """Runs a program (no shell) per event, the event as JSON on its standard input."""

    kind: Literal["exec"]
    argv: Annotated[list[str], Field(min_length=1, max_length=64), AfterValidator(_check_argv)] = Field(
        description="the program (absolute path) and its arguments"
    )
    env: list[EnvName] = Field(
        default_factory=list, description="variables passed from the daemon's environment; nothing else is"
    )


class WebhookHook(_HookBase):
    """POSTs each event as JSON to a URL, signed with HMAC-SHA256 (header X-Bgpctl-Signature)."""

    kind: Literal["webhook"]
    url: Annotated[str, AfterValidator(_check_hook_url)] = Field(
        description="http:// or https:// URL the event is POSTed to"
    )
    secret: SecretRef = Field(description="where the HMAC key comes from: {file: PATH} or {env: VARIABLE}")
    retries: Annotated[int, Field(ge=0, le=10)] = Field(
        3, description="attempts after the first, on a connection error, a timeout, 429 or 5xx"
    )
    backoff_s: Annotated[float, Field(ge=0.01, le=60)] = Field(
        0.5, description="wait before the first retry; doubles for each next one (with jitter)"
    )


def _hook_tag(value: object) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in ("exec", "webhook") else None


Hook = Annotated[
    Annotated[ExecHook, Tag("exec")] | Annotated[WebhookHook, Tag("webhook")],
    Discriminator(
        _hook_tag,
        custom_error_type="bgpctl",
        custom_error_message="{message}: {hint}",
        custom_error_context={
            "message": "a hook needs 'kind: exec' or 'kind: webhook'",
            "hint": "exec runs a program with the event on stdin, webhook POSTs it to a URL",
        },
    ),
]
"""A hook, picked by its ``kind``."""


# --------------------------------------------------------------------------------------------
# high availability: a controller pair (docs/ha.md)


class HaRole(enum.StrEnum):
    """This host's role in a controller pair: peers prefer every route of the primary while it has one."""

    PRIMARY = "primary"
    SECONDARY = "secondary"


class HaPenalty(_Model):
    """How much worse every announcement of the secondary is than the same announcement of the primary
    (the same values on both hosts; xref checks they outrank every action's own de-preference)."""

    prepend: Annotated[int, Field(ge=1, le=10)] = Field(
        description="extra copies of the local AS on every route of the secondary, on top of the action's prepend"
    )
    med: Annotated[int, Field(ge=0, le=2147483647)] = Field(
        0, description="added to every MED the secondary sends (a missing MED counts as 0)"
    )
    transit_gateway_communities: list[Community] | None = Field(
        None,
        description="replace the standard communities of every route of the secondary to a transit gateway "
        "(e.g. the AWS lowest local preference 7224:7100); omit to keep the actions' communities",
    )


class HighAvailability(_Model):
    role: HaRole = Field(description="this host's role: primary or secondary")
    secondary: HaPenalty = Field(description="how much worse the secondary's announcements are")


class Policy(_Model):
    version: Literal[1] = 1
    speaker: Speaker
    peers: list[Peer] = Field(min_length=1)
    regions: dict[Name, Region] = Field(min_length=1)
    services: dict[Name, Service] = Field(min_length=1)
    sla_classes: dict[Name, SlaClass] = Field(min_length=1)
    actions: Actions
    corporate: Corporate | None = None
    guards: Guards
    overrides: Overrides = Overrides()
    control: Control = Control()
    hooks: dict[Name, Hook] = Field(default_factory=dict, description="programs and URLs told about events")
    signals: dict[Name, SignalField] = Field(
        default_factory=dict, description="outside signals that can mark a region or path degraded or down"
    )
    ha: HighAvailability | None = Field(None, description="this host's place in a controller pair (docs/ha.md)")

    def peer(self, name: str) -> Peer:
        for p in self.peers:
            if p.name == name:
                return p
        raise KeyError(name)
