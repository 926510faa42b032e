#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""profile - where relaymilter spends its CPU, under milterload or Postfix.

    python3 profile.py --milter PATH --milterload PATH [--secs N] [--conns N]
                       [--rcpts N] [--postfix] [--out DIR]

A private redis-server and relaymilter (the benchmark settings of benchlib),
milterload at --conns connections, and meanwhile:
  1. perf record -a -g (system-wide, so that libmilter's worker threads,
     however short-lived, are all seen) for --secs seconds; then the share of
     the daemon's samples per library and its top symbols, self and with
     children (perf report --pid), and Redis's top symbols;
  2. strace -c -f on the daemon over a fixed number of messages: system calls
     per message, by call.
--postfix: the load comes from smtp-source through a private Postfix
(postfix_compare.py's setup, root only; --conns sessions, a session per
message) instead of milterload; the same reports, with the samples of every
command (Postfix's processes too) first.
Needs perf (Debian: linux-perf) and strace; a missing tool skips its part.
perf.data is kept in --out (default: a temp dir) for a closer look:
    perf report -i DIR/perf.data --pid PID   (the PIDs are printed)
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import benchlib as bl


def perf_report(data, *args):
    res = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-header"]
                         + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    return [ln for ln in res.stdout.splitlines()
            if ln.strip() and not ln.startswith("#") and "%" in ln]


def reports(data, mpid, rpid):
    """The reports; the daemon's and Redis's samples are selected by PID:
    other processes of the same name (other tests) are left out."""
    print("== samples by command (self, the whole machine)")
    print("\n".join(perf_report(data, "--no-children", "--sort", "comm",
                                "-g", "none")[:15]))
    print("\n== relaymilter (PID %d): samples by library (self)" % mpid)
    print("\n".join(perf_report(data, "--pid", str(mpid), "--no-children",
                                "--sort", "dso", "-g", "none")[:10]))
    print("\n== relaymilter: top symbols (self)")
    print("\n".join(perf_report(data, "--pid", str(mpid), "--no-children",
                                "--sort", "dso,sym", "-g", "none")[:30]))
    print("\n== relaymilter: top entries with children (where the time is spent)")
    print("\n".join(perf_report(data, "--pid", str(mpid), "--children",
                                "--sort", "sym", "-g", "none")[:45]))
    print("\n== relaymilter: its own code (dso relaymilter, self)")
    print("\n".join(perf_report(data, "--pid", str(mpid), "--no-children",
                                "--dso", "relaymilter", "--sort", "sym",
                                "-g", "none")[:15]))
    print("\n== redis-server (PID %d): top symbols (self)" % rpid)
    print("\n".join(perf_report(data, "--pid", str(rpid), "--no-children",
                                "--sort", "dso,sym", "-g", "none")[:20]))


def perf_record(data, secs, pid):
    """System-wide samples; meanwhile, the call chains of the daemon's futex
    calls (lock waits and wake-ups) in DIR/futex.data."""
    fx = subprocess.Popen(["perf", "record", "-e", "syscalls:sys_enter_futex", "-g",
                           "-p", str(pid), "-o", data.replace("perf.data", "futex.data"),
                           "--", "sleep", str(secs)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    subprocess.run(["perf", "record", "-a", "-g", "-F", "999", "-o", data, "--",
                    "sleep", str(secs)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    fx.wait(60)


def futex_report(data, msgs):
    fdata = data.replace("perf.data", "futex.data")
    if not os.path.exists(fdata):
        return
    res = subprocess.run(["perf", "script", "-i", fdata, "-F", "ip,sym"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # one event = a header line, then its call chain (innermost first): count
    # the first frame that is not in libc's futex / lock wrappers
    counts, n, chain = {}, 0, []
    skip = ("futex", "lll_lock", "__lll", "pthread_cond", "pthread_mutex",
            "pthread_rwlock", "syscall", "__GI_", "___pthread", "unknown")

    def flush(chain):
        for sym in chain:
            if not any(k in sym for k in skip):
                counts[sym] = counts.get(sym, 0) + 1
                return
        # no caller in the chain (libc has no frame pointers): the wrapper
        sym = "(caller unknown) " + chain[0]
        counts[sym] = counts.get(sym, 0) + 1
    for line in res.stdout.splitlines():
        if not line.strip():
            if chain:
                flush(chain)
                n += 1
            chain = []
            continue
        parts = line.split(None, 1)
        if len(parts) == 2:
            chain.append(parts[1].strip())
    if chain:
        flush(chain)
        n += 1
    print("\n== relaymilter: futex calls (%d%s), by their first caller outside the "
          "lock wrappers (strace -f -k names more callers)"
          % (n, ", %.1f per message" % (n / msgs) if msgs else ""))
    for sym, k in sorted(counts.items(), key=lambda kv: -kv[1])[:15]:
        print("  %6d  %s" % (k, sym))


def print_strace(trace, msgs, what):
    print("\n== relaymilter: system calls per message (strace -c -f, %d messages, %s)"
          % (msgs, what))
    total = 0.0
    with open(trace) as f:
        for line in f:
            cols = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(cols) >= 5 and cols[0][0].isdigit() and cols[3].isdigit():
                print("  %-16s %6.1f" % (cols[-1], int(cols[3]) / msgs))
                total += int(cols[3]) / msgs
    print("  %-16s %6.1f" % ("all", total))


def strace_start(pid, trace):
    st = subprocess.Popen(["strace", "-c", "-f", "-o", trace, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return st


def strace_stop(st):
    time.sleep(0.5)
    st.send_signal(signal.SIGINT)
    st.wait(30)


def with_milterload(a, out):
    r = bl.Redis().start()
    m = bl.Milter(a.milter, r).start()
    bl.milterload(a.milterload, m.spec, conns=4, msgs=500)
    print("machine: %s" % bl.machine())
    if shutil.which("perf"):
        data = os.path.join(out, "perf.data")
        load = subprocess.Popen(
            [a.milterload, "-s", m.spec, "-c", str(a.conns), "-n", "100000000",
             "-u", "1000", "-r", str(a.rcpts), "-d", str(a.secs + 4),
             "-P", str(m.pid), "-P", str(r.pid)],
            stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        perf_record(data, a.secs, m.pid)
        out_text = load.communicate()[0]
        print(out_text.split("RESULT")[0])
        reports(data, m.pid, r.pid)
        futex_report(data, 0)
    else:
        print("perf not installed (apt-get install linux-perf): skipped")
    if shutil.which("strace"):
        n = 2000
        trace = os.path.join(out, "strace.txt")
        st = strace_start(m.pid, trace)
        res = bl.milterload(a.milterload, m.spec, conns=2, msgs=n, per_conn=5,
                            rcpts=a.rcpts, customers=100)
        strace_stop(st)
        print_strace(trace, res["msgs"], "milterload, 5 per connection, 2 connections, "
                     "%d recipient(s)" % a.rcpts)
    else:
        print("strace not installed: skipped")


def with_postfix(a, out):
    import postfix_compare as pc

    if os.geteuid() != 0:
        print("profile --postfix: needs root (Postfix)")
        return 1
    b = pc.Bench(argparse.Namespace(milter=a.milter, references={})).start()
    b.run("inet", 100, 5, a.rcpts)
    print("machine: %s" % bl.machine())
    pid = b.milter_pid["inet"]
    argv = [pc.SMTP_SOURCE, "-s", str(a.conns), "-l", "2048", "-r", str(a.rcpts),
            "-f", "sender@client.bench.example", "-t", "rcpt@dest.bench.example",
            "-M", "client.bench.example"]
    target = "127.0.0.1:%d" % b.ports["inet"]
    if shutil.which("perf"):
        data = os.path.join(out, "perf.data")
        b.drain()
        c0 = bl.proc_cpu(pid)
        acc0 = b.decisions("inet")
        src = subprocess.Popen(argv + ["-m", "1000000", target], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(2)
        perf_record(data, a.secs, pid)
        src.terminate()
        src.wait(30)
        n = b.decisions("inet") - acc0
        print("smtp-source -s %d -r %d through Postfix: %d messages, milter CPU %.0f us "
              "per message" % (a.conns, a.rcpts, n, (bl.proc_cpu(pid) - c0) * 1e6
                               / max(1, n)))
        time.sleep(2)
        b.drain()
        reports(data, pid, b.redis.pid)
        futex_report(data, n)
    if shutil.which("strace"):
        n = 300
        trace = os.path.join(out, "strace.txt")
        st = strace_start(pid, trace)
        b.run("inet", n, a.conns, a.rcpts)
        strace_stop(st)
        print_strace(trace, n, "smtp-source -s %d through Postfix, a session per "
                     "message, %d recipient(s)" % (a.conns, a.rcpts))
    b.drain()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--milter", required=True)
    ap.add_argument("--milterload")
    ap.add_argument("--secs", type=int, default=15)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--postfix", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if not a.postfix and not a.milterload:
        ap.error("--milterload is needed (or --postfix)")
    out = a.out or tempfile.mkdtemp(prefix="rm-bench-profile.")
    os.makedirs(out, exist_ok=True)

    la = bl.wait_for_quiet()
    rc = with_postfix(a, out) if a.postfix else with_milterload(a, out)
    print("\nload average: %.2f before, %.2f after; perf.data in %s"
          % (la, bl.loadavg(), out))
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
