"""Policy -> ExaBGP configuration text and env file text.

:func:`render_config` and :func:`render_env` are pure. The MD5 secrets are read by :func:`read_secrets`
(the only I/O here) at start-up and handed to the renderer; the rendered file is then written mode 0600
by :func:`write_private` and never logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bgpctl.errors import SpeakerError
from bgpctl.policy import secrets
from bgpctl.policy.model import AddPath, Peer, Policy, SecretRef
from bgpctl.policy.secrets import md5_password_problem
from bgpctl.rundir import RunDir

PROCESS_NAME = "bgpctl"
_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 ._:/()+-]")
_SAFE_ARG = re.compile(r"[A-Za-z0-9_./+-]+")  # fullmatch: '$' would let a trailing newline through
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class Rendered:
    config: str
    env: str


def read_secret(ref: SecretRef, environ: Mapping[str, str]) -> str:
    """The MD5 password a SecretRef names (:func:`bgpctl.policy.secrets.read_secret`). The message of any error
    names the source, never the value."""
    try:
        return secrets.read_secret(ref, environ, what="the MD5 password", field="md5_password")
    except secrets.SecretError as e:
        raise SpeakerError(str(e)) from e


def read_secrets(policy: Policy, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """peer name -> MD5 password, for every peer that has one."""
    env = os.environ if environ is None else environ
    return {p.name: read_secret(p.md5_password, env) for p in policy.peers if p.md5_password is not None}


def _md5(peer: Peer, secret: str) -> str:
    problem = md5_password_problem(secret)
    if problem is not None:
        raise SpeakerError(
            f"the MD5 password of peer {peer.name} {problem}: choose another and put it where its md5_password names"
        )
    return secret


def _local_address(policy: Policy, peer: Peer) -> str:
    if peer.local_address is not None:
        if peer.local_address.version != peer.address.version:
            raise SpeakerError(
                f"peer {peer.name}: local_address {peer.local_address} and address {peer.address} "
                f"are of different IP versions"
            )
        return str(peer.local_address)
    for addr in policy.speaker.local_addresses:
        if addr.version == peer.address.version:
            return str(addr)
    raise SpeakerError(
        f"peer {peer.name} ({peer.address}) has no local_address and speaker.local_addresses has "
        f"no IPv{peer.address.version} address: add one"
    )


def _neighbor(policy: Policy, peer: Peer, secrets: Mapping[str, str]) -> list[str]:
    lines = [f"neighbor {peer.address} {{", "    inherit base;"]
    description = _SAFE_TEXT.sub("", peer.description or peer.name)[:60]
    lines.append(f'    description "{description}";')
    lines.append(f"    local-address {_local_address(policy, peer)};")
    lines.append(f"    peer-as {peer.peer_as};")
    lines.append(f"    hold-time {peer.timers.hold_time};")
    if peer.md5_password is not None:
        if peer.name not in secrets:
            raise SpeakerError(f"peer {peer.name} needs an MD5 password but none was read: call read_secrets()")
        lines.append(f'    md5-password "{_md5(peer, secrets[peer.name])}";')
    if peer.ttl_security:
        lines.append("    outgoing-ttl 255;")
        lines.append("    incoming-ttl 255;")
    if peer.add_path is not AddPath.OFF:
        lines.append(f"    capability {{ add-path {peer.add_path.value}; }}")
    lines.append("    family {")
    lines.extend(f"        {' '.join(f.words)};" for f in peer.families)
    lines.append("    }")
    if peer.add_path is not AddPath.OFF:
        lines.append("    add-path {")
        lines.extend(f"        {' '.join(f.words)};" for f in peer.families)
        lines.append("    }")
    lines.append("}")
    return lines


def render_config(policy: Policy, relay_argv: Sequence[str], secrets: Mapping[str, str]) -> str:
    """The whole ExaBGP configuration. ``relay_argv``: the API process ExaBGP runs (absolute path first)."""
    if not relay_argv or not relay_argv[0].startswith("/"):
        raise SpeakerError(f"the relay command {list(relay_argv)} must start with an absolute path")
    for arg in relay_argv:
        if not _SAFE_ARG.fullmatch(arg):
            raise SpeakerError(
                f"relay argument {arg!r} holds characters ExaBGP's 'run' cannot carry (spaces, "
                f"quotes, ';'): move the run directory to a plain path"
            )
    sp = policy.speaker
    gr = sp.exabgp.graceful_restart
    capability = ["        capability {", "            route-refresh;"]
    if gr > 0:
        capability.append(f"            graceful-restart {gr};")
    capability.append("        }")
    lines = [
        "# Rendered by bgpctl from the policy at start-up. Do not edit: it is rewritten on every start.",
        f"process {PROCESS_NAME} {{",
        f"    run {' '.join(relay_argv)};",
        "    encoder json;",
        "}",
        "",
        "template {",
        "    neighbor base {",
        f"        router-id {sp.router_id};",
        f"        local-as {sp.local_as};",
        f"        group-updates {'true' if sp.exabgp.group_updates else 'false'};",
        f"        manual-eor {'true' if gr > 0 else 'false'};",
        *capability,
        "        api {",
        f"            processes [ {PROCESS_NAME} ];",
        "            neighbor-changes;",
        "            negotiated;",
        "            receive { parsed; update; notification; }",
        "            send { parsed; update; }",
        "        }",
        "    }",
        "}",
        "",
    ]
    for peer in policy.peers:
        lines.extend(_neighbor(policy, peer, secrets))
        lines.append("")
    return "\n".join(lines)


def render_env(policy: Policy) -> str:
    """ExaBGP's env file. ``api.terminate``: if the relay dies, ExaBGP exits and the supervisor restarts it
    (one recovery path for every fault, with graceful restart keeping the routes meanwhile)."""
    user = policy.speaker.exabgp.user
    if not _USER.fullmatch(user):
        raise SpeakerError(f"speaker.exabgp.user {user!r} is not a valid user name")
    return "\n".join(
        [
            "[exabgp.daemon]",
            f"user = '{user}'",
            "daemonize = false",
            "pid = ''",
            "[exabgp.api]",
            "ack = true",
            "cli = false",
            "encoder = json",
            "respawn = false",
            "terminate = true",
            "[exabgp.log]",
            "destination = 'stdout'",
            "level = INFO",
            "configuration = false",
            "",
        ]
    )


def render(policy: Policy, relay_argv: Sequence[str], secrets: Mapping[str, str]) -> Rendered:
    return Rendered(render_config(policy, relay_argv, secrets), render_env(policy))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` mode 0600 from the first byte, never through a symlink (see
    :meth:`bgpctl.rundir.RunDir.write_private`); ``path``'s directory must pass the run-directory checks."""
    with RunDir.open(path.parent) as run_dir:
        run_dir.write_private(path.name, text)
