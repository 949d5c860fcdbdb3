"""Run a program under the system call filter of deploy/bgpctl.service, the way systemd would apply it.

    python seccomp_exec.py ALLOW_FILE PROGRAM ARGS...

ALLOW_FILE holds the system call names the unit allows (one per line, resolved by the test from
``systemd-analyze syscall-filter``: ``@system-service`` minus ``@privileged @resources``). Every other
call fails with EPERM (``SystemCallErrorNumber=EPERM``). libseccomp (the library systemd uses) through
ctypes; the caller must have set no_new_privs (setpriv --no-new-privs), as systemd does with
``NoNewPrivileges=yes``. Standard library only: it runs under the system's python.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_BASE = 0x00050000
NR_SCMP_ERROR = -1


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write("usage: seccomp_exec.py ALLOW_FILE PROGRAM ARGS...\n")
        return 64
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO_BASE | errno.EPERM)
    if not ctx:
        sys.stderr.write("seccomp_init failed\n")
        return 70
    with open(argv[1], encoding="ascii") as f:
        names = [line.strip() for line in f if line.strip()]
    for name in names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == NR_SCMP_ERROR:
            continue  # not a system call of this architecture (systemd skips these too)
        rc = lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)
        if rc < 0 and rc != -errno.EEXIST:
            sys.stderr.write(f"seccomp_rule_add({name}) failed: {os.strerror(-rc)}\n")
            return 70
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        sys.stderr.write(f"seccomp_load failed: {os.strerror(-rc)} (no_new_privs set?)\n")
        return 70
    os.execv(argv[2], argv[2:])
    return 70


if __name__ == "__main__":
    sys.exit(main(sys.argv))
