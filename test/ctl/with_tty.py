#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""with_tty.py ANSWER CMD... - runs CMD with a terminal (a pseudo-terminal) as
its standard input, types ANSWER and a newline into it ("" types nothing),
and passes on CMD's standard output, standard error and exit status; 124
when CMD is still running after 20 s (it waited for an answer it never got).
"""
import os
import pty
import subprocess
import sys

answer, cmd = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(slave)
if answer:
    os.write(master, (answer + "\n").encode())
try:
    out, err = proc.communicate(timeout=20)
except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
    proc.returncode = 124
os.close(master)
sys.stdout.write(out.decode(errors="replace"))
sys.stderr.write(err.decode(errors="replace"))
sys.exit(proc.returncode)
