"""Run a command as on a kernel without some system calls: ``python
nosys.py CALL=ERRNO... -- COMMAND...`` makes each CALL fail with ERRNO
(ENOSYS: a kernel without it; EPERM: a container's seccomp profile) for
COMMAND and everything it starts, through a real seccomp filter."""
import errno
import os
import sys

import pyseccomp as sc

cut = sys.argv.index("--")
f = sc.SyscallFilter(sc.ALLOW)
for rule in sys.argv[1:cut]:
    call, _, err = rule.partition("=")
    f.add_rule(sc.ERRNO(getattr(errno, err)), call)
f.load()
os.execvp(sys.argv[cut + 1], sys.argv[cut + 1:])
