"""Rulesets for link impairments without netem: rendering (pure) and applying them in one namespace.

What each piece does, on the egress side of one interface:

* loss and duplication live in a ``netdev`` table ``bgpctl_impair_<ifname>`` on the interface's
  ``egress`` hook (Linux >= 5.16), so they hit locally generated and forwarded packets alike.
  A lost packet is not ``drop``-ped but ``fwd``-ed to ``bgpctl_sink``, an ``ifb`` device that stays
  down and discards it: a ``drop`` on the egress hook returns ``NET_XMIT_DROP`` to a local sender
  (ping then reports ``ENOBUFS`` and re-sends, TCP treats it as local congestion), whereas a
  stolen packet looks to the sender like a packet that left and was lost on the wire, which is
  what netem's loss looks like too. Duplication is ``dup to "<ifname>"`` (the copy leaves on the
  same interface).
* delay, jitter and reordering queue packets to userspace (NFQUEUE, see :mod:`bgpctl_lab.delayer`)
  from the ``mangle`` ``POSTROUTING`` hook matching ``-o <ifname>`` (postrouting sees local and
  forwarded packets, and a packet passes it once, so nothing is queued twice). The kernels this
  project runs on have no ``nft_queue`` (``CONFIG_NFT_QUEUE`` is not set), so the queue rule is an
  iptables(-nft) ``NFQUEUE`` target in its own chain ``bgpctl_q_<ifname>``, for IPv4 and IPv6.
  It carries ``--queue-bypass``: when no delayer is bound to the queue (it exited or died), packets
  pass undelayed instead of being dropped (fail open). Packets the delayer held when it died are
  dropped by the kernel once, then traffic flows unimpaired until ``clear`` removes the rule.
* a blackhole (``bgpctl_blackhole_<ifname>``) drops everything arriving on the interface and
  steals everything leaving it, ARP included, while the link stays up.

Order on egress: postrouting (queue -> delay) comes before the device's egress hook (loss, then
duplication), so loss and duplication apply to packets as they leave the delayer.
Loss and duplication match IPv4 and IPv6 only (ARP keeps working, as the delayer only sees IP).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from typing import Literal

from bgpctl.errors import LabError

SINK_IFNAME = "bgpctl_sink"
TABLE_PREFIX = "bgpctl_impair_"
BLACKHOLE_PREFIX = "bgpctl_blackhole_"
QUEUE_CHAIN_PREFIX = "bgpctl_q_"
QUEUE_TABLE = "mangle"
DUP_MARK = 0x40000000  # one packet-mark bit, set only while a packet is being duplicated

# Loss and duplication resolution: 1/100 of a percent (numgen random mod 10000).
_SCALE = 10_000
_IFNAME = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
_RUN_BUDGET_S = 10.0


def check_ifname(ifname: str) -> str:
    """An interface name that is safe to put into a ruleset (Linux IFNAMSIZ, no quoting games)."""
    if not _IFNAME.fullmatch(ifname):
        raise LabError(f"interface name {ifname!r} is not valid: use 1 to 15 letters, digits or _ . @ -")
    return ifname


def impair_table(ifname: str) -> str:
    return TABLE_PREFIX + check_ifname(ifname)


def blackhole_table(ifname: str) -> str:
    return BLACKHOLE_PREFIX + check_ifname(ifname)


def queue_chain(ifname: str) -> str:
    return QUEUE_CHAIN_PREFIX + check_ifname(ifname)


def queue_num_for(ifindex: int) -> int:
    """NFQUEUE numbers are per network namespace, and so are ifindexes: the ifindex is unique."""
    if not 0 < ifindex < 65536:
        raise LabError(f"ifindex {ifindex} does not fit a 16-bit NFQUEUE number; pick another interface")
    return ifindex


def _threshold(pct: float) -> int:
    return round(pct * _SCALE / 100.0)


def _random_below(pct: float) -> str:
    """nft condition true for ``pct`` percent of packets; empty string at 100 % (always true)."""
    t = _threshold(pct)
    if t >= _SCALE:
        return ""
    return f"numgen random mod {_SCALE} < {t} "


def _udp_match(udp_dport: int | None) -> str:
    if udp_dport is None:
        return ""
    if not 1 <= udp_dport <= 65535:
        raise LabError(f"udp_dport={udp_dport} must be a UDP port, 1 to 65535")
    return f"meta l4proto udp udp dport {udp_dport} "


def render_impair(ifname: str, loss_pct: float, duplicate_pct: float, udp_dport: int | None = None) -> str:
    """An ``nft -f`` script that (re)creates the loss/duplication table atomically, or deletes it.
    With ``udp_dport``, only UDP packets to that port are lost or duplicated (and counted)."""
    table = impair_table(ifname)
    match = _udp_match(udp_dport)
    lines = [f"add table netdev {table}", f"delete table netdev {table}"]
    if _threshold(loss_pct) <= 0 and _threshold(duplicate_pct) <= 0:
        return "\n".join(lines) + "\n"
    rules = []
    if _threshold(loss_pct) > 0:
        rules.append(f'meta protocol {{ ip, ip6 }} {match}{_random_below(loss_pct)}counter fwd to "{SINK_IFNAME}"')
    if _threshold(duplicate_pct) > 0:
        # The copy goes through this hook again: it carries DUP_MARK so it is not copied once more
        # (else the duplicates would be p/(1-p), not p); the original gets its mark back.
        rules.append(
            f"meta protocol {{ ip, ip6 }} {match}meta mark & {DUP_MARK:#x} == 0 {_random_below(duplicate_pct)}"
            f'meta mark set meta mark | {DUP_MARK:#x} counter dup to "{ifname}" '
            f"meta mark set meta mark & {~DUP_MARK & 0xFFFFFFFF:#x}"
        )
    lines += [
        f"table netdev {table} {{",
        "  chain egress {",
        f'    type filter hook egress device "{ifname}" priority 0; policy accept;',
        *(f"    {r}" for r in rules),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


BlackholeFamily = Literal["all", "ipv4", "ipv6"]
# the netdev hooks see the Ethernet type: IPv4 is `ip` (ARP goes on), IPv6 is `ip6` (neighbour discovery with it)
_ETHER_TYPE: dict[str, str] = {"ipv4": "ip", "ipv6": "ip6"}


def render_blackhole(ifname: str, on: bool, family: BlackholeFamily = "all") -> str:
    """Drop everything arriving on ``ifname`` and steal everything leaving it; with ``family`` only that IP
    family's packets (a fault that breaks IPv6 alone while IPv4 on the same link goes on, or the reverse)."""
    table = blackhole_table(ifname)
    lines = [f"add table netdev {table}", f"delete table netdev {table}"]
    if on:
        if family == "all":
            ingress, drop, match = "policy drop;", [], ""
        elif family in _ETHER_TYPE:
            match = f"meta protocol {_ETHER_TYPE[family]} "
            ingress, drop = "policy accept;", [f"    {match}counter drop"]
        else:
            raise LabError(f"blackhole family {family!r}: use all, ipv4 or ipv6")
        lines += [
            f"table netdev {table} {{",
            "  chain ingress {",
            f'    type filter hook ingress device "{ifname}" priority -100; {ingress}',
            *drop,
            "  }",
            "  chain egress {",
            f'    type filter hook egress device "{ifname}" priority -100; policy accept;',
            f'    {match}counter fwd to "{SINK_IFNAME}"',
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def render_queue(ifname: str, queue_num: int, udp_dport: int | None = None) -> str:
    """``iptables-restore --noflush`` input that (re)creates the queue chain and its jump (with
    ``udp_dport``: only UDP packets to that port are queued, i.e. delayed)."""
    chain = queue_chain(ifname)
    _udp_match(udp_dport)  # checks the port
    match = f"-p udp --dport {udp_dport} " if udp_dport is not None else ""
    return "\n".join(
        [
            f"*{QUEUE_TABLE}",
            f":{chain} - [0:0]",
            f"-A POSTROUTING -o {ifname} -j {chain}",
            f"-A {chain} {match}-j NFQUEUE --queue-num {queue_num} --queue-bypass",
            "COMMIT",
            "",
        ]
    )


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (``None``: the current namespace)."""
    return (["ip", "netns", "exec", netns] if netns else []) + list(argv)


def _run(argv: list[str], stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        cp = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=_RUN_BUDGET_S, check=False)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]} is not installed: apt-get install nftables iptables iproute2") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv)} did not finish within {_RUN_BUDGET_S} s") from e
    if check and cp.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed (rc {cp.returncode}): {cp.stderr.strip()}\ninput was:\n{stdin}")
    return cp


def apply_nft(script: str, netns: str | None = None) -> None:
    _run(netns_argv(netns, ["nft", "-f", "-"]), script)


def list_tables(netns: str | None = None) -> list[str]:
    """``family name`` of every nft table in the namespace."""
    out = _run(netns_argv(netns, ["nft", "list", "tables"])).stdout
    return [line.removeprefix("table ").strip() for line in out.splitlines() if line.startswith("table ")]


def _iptables_cmds() -> tuple[str, str]:
    return ("iptables", "ip6tables")


def queue_present(ifname: str, netns: str | None = None) -> bool:
    chain = queue_chain(ifname)
    return any(
        _run(netns_argv(netns, [cmd, "-t", QUEUE_TABLE, "-S", chain]), check=False).returncode == 0
        for cmd in _iptables_cmds()
    )


def install_queue(ifname: str, queue_num: int, netns: str | None = None, udp_dport: int | None = None) -> None:
    remove_queue(ifname, netns)
    script = render_queue(ifname, queue_num, udp_dport)
    for cmd in _iptables_cmds():
        _run(netns_argv(netns, [f"{cmd}-restore", "--noflush"]), script)


def remove_queue(ifname: str, netns: str | None = None) -> bool:
    """Remove the queue chain and every jump to it; True if something was there. Idempotent."""
    chain = queue_chain(ifname)
    removed = False
    for cmd in _iptables_cmds():
        base = netns_argv(netns, [cmd, "-t", QUEUE_TABLE])
        if _run([*base, "-S", chain], check=False).returncode != 0:
            continue
        removed = True
        rules = _run([*base, "-S", "POSTROUTING"]).stdout.splitlines()
        for rule in rules:
            words = rule.split()
            if words[:2] == ["-A", "POSTROUTING"] and words[-2:] == ["-j", chain]:
                _run([*base, "-D", *words[1:]])
        _run([*base, "-F", chain])
        _run([*base, "-X", chain])
    return removed


def delete_table(table: str, netns: str | None = None) -> bool:
    """Delete a netdev table if present; True if it was there."""
    present = f"netdev {table}" in list_tables(netns)
    apply_nft(f"add table netdev {table}\ndelete table netdev {table}\n", netns)
    return present


def ensure_sink(netns: str | None = None) -> None:
    """The down ``ifb`` device that swallows lost packets (created once per namespace)."""
    if _run(netns_argv(netns, ["ip", "link", "show", "dev", SINK_IFNAME]), check=False).returncode == 0:
        return
    _run(netns_argv(netns, ["ip", "link", "add", SINK_IFNAME, "type", "ifb"]))


def remove_sink_if_unused(netns: str | None = None) -> bool:
    """Delete the sink once no bgpctl table refers to it any more; True if it was deleted."""
    tables = list_tables(netns)
    if any(t.startswith(("netdev " + TABLE_PREFIX, "netdev " + BLACKHOLE_PREFIX)) for t in tables):
        return False
    if _run(netns_argv(netns, ["ip", "link", "show", "dev", SINK_IFNAME]), check=False).returncode != 0:
        return False
    _run(netns_argv(netns, ["ip", "link", "del", SINK_IFNAME]))
    return True


def set_blackhole(ifname: str, on: bool, netns: str | None = None, family: BlackholeFamily = "all") -> None:
    if on:
        ensure_sink(netns)
    apply_nft(render_blackhole(ifname, on, family), netns)
    if not on:
        remove_sink_if_unused(netns)


def ifindex(ifname: str, netns: str | None = None) -> int:
    out = _run(netns_argv(netns, ["cat", f"/sys/class/net/{check_ifname(ifname)}/ifindex"]), check=False)
    if out.returncode != 0:
        where = f"namespace {netns}" if netns else "this namespace"
        raise LabError(f"no interface {ifname!r} in {where}: check the name with `ip -n NS link`")
    return int(out.stdout.strip())
