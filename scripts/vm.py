#!/usr/bin/env python3
"""Boots the orion-nvme test VM and reports what ran inside it.

The guest talks to us over its second serial port (ttyS1, the "control port"):
  - every line is appended to the results file (TAP from the selftests);
  - "ORION-QMP <json>" runs a QMP command on this VM and answers "ORION-QMP-REPLY <json>";
  - "ORION-DONE rc=N" ends the run with the guest's verdict.
The console (ttyS0) goes to console.log. A hard timeout kills a hung guest; the exit status is
the guest's verdict, or 1 when it never delivered one.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

# Named controller layouts. Each entry: (backing files to create as (name, MiB), QEMU args).
def profile_args(name, rundir):
    img = lambda n: os.path.join(rundir, n)
    def ctrl(i, extra, drive=None, serial=None, speed="5"):
        # x-speed=5: a root port slower than 8 GT/s, whose link the kernel does not require to
        # report Data Link Layer Link Active after a secondary bus reset. QEMU sets DLLLA only
        # on native hotplug, and q35 uses ACPI hotplug, so the PCI core's AER recovery of a
        # faster port fails its link wait (-ENOTTY) whatever the driver: speed=None keeps
        # QEMU's default (16 GT/s) for test 112's failed recovery.
        rp = f"pcie-root-port,id=rp{i},bus=pcie.0,chassis={i + 1},slot={i + 1}"
        a = ["-device", rp + (f",x-speed={speed}" if speed else "")]
        dev = f"nvme,id=nvme{i},bus=rp{i},serial={serial or f'ORION{i:04d}'}{extra}"
        if drive:
            dev += f",drive={drive}"
        return a + ["-device", dev]
    def drive(name):
        return ["-drive", f"file={img(name)},if=none,id={name},format=raw,cache=none,aio=threads,discard=unmap"]
    if name == "single":
        files = [("d0", 1024)]
        args = drive("d0") + ctrl(0, "", "d0")
    elif name == "dual":
        files = [("d0", 1024), ("d1", 1024)]
        args = drive("d0") + ctrl(0, "", "d0") + drive("d1") + ctrl(1, "", "d1", speed=None)
    elif name == "subsys":
        # One controller in an NVM subsystem with several namespaces: different LBA sizes,
        # sparse NSIDs, and a smaller MDTS than the default.
        # NSID 7 is allocated but detached: attach-ns/detach-ns and the rescan work on it.
        files = [("n1", 512), ("n2", 512), ("n5", 256), ("n7", 64)]
        args = ["-device", "nvme-subsys,id=subsys0,nqn=orion-subsys"]
        args += ctrl(0, ",subsys=subsys0,mdts=5")
        for nsid, f, lbs, extra in [(1, "n1", 512, ""), (2, "n2", 4096, ""), (5, "n5", 512, ""),
                                    (7, "n7", 512, ",detached=on")]:
            args += drive(f)
            args += ["-device", f"nvme-ns,drive={f},nsid={nsid},logical_block_size={lbs},physical_block_size={lbs}{extra}"]
    elif name == "odd":
        # A controller nobody's defaults produce: one I/O queue pair, one MSI-X vector,
        # MDTS 1 (8 KiB transfers), a 4 KiB-LBA namespace at NSID 3.
        files = [("n3", 256)]
        args = ctrl(0, ",max_ioqpairs=1,msix_qsize=1,mdts=1")
        args += drive("n3")
        args += ["-device", "nvme-ns,drive=n3,nsid=3,logical_block_size=4096,physical_block_size=4096"]
    elif name == "intx":
        # Two controllers with MSI and MSI-X turned off in the guest (pci=nomsi, added by
        # main): the drivers fall back to INTx, and the two functions may share a line.
        files = [("d0", 256), ("d1", 256)]
        args = drive("d0") + ctrl(0, "", "d0") + drive("d1") + ctrl(1, "", "d1")
    elif name == "faults":
        # A controller whose namespace 1 sits behind QEMU's blkdebug driver, so a test can
        # hold a command inside the "device" (qemu-io "break"/"resume" through QMP): a
        # completion that does not arrive until the test says so. Namespace 2 (detached at
        # boot, so only the error test sees it) has media errors injected by blkdebug: every
        # read touching 512-byte sector 2048 and every write touching sector 4096 fails with
        # EIO inside QEMU.
        files = [("f0", 256), ("e0", 16)]
        args = ["-drive", f"file=blkdebug::{img('f0')},if=none,id=f0,format=raw,cache=none,aio=threads,discard=unmap"]
        inject = ",".join(
            f"file.inject-error.{i}.{k}={v}"
            for i, (ev, sector) in enumerate([("read_aio", 2048), ("write_aio", 4096)])
            for k, v in [("event", ev), ("sector", sector), ("errno", 5), ("once", "off")])
        args += ["-drive", "if=none,id=e0,cache=none,aio=threads,discard=unmap,driver=raw,"
                 f"file.driver=blkdebug,file.image.driver=file,file.image.filename={img('e0')},{inject}"]
        args += ["-device", "nvme-subsys,id=subsys1,nqn=orion-faults"]
        args += ctrl(0, ",subsys=subsys1")
        args += ["-device", "nvme-ns,drive=f0,nsid=1"]
        args += ["-device", "nvme-ns,drive=e0,nsid=2,detached=on"]
    elif name == "changes":
        # Controllers whose configuration changes under the driver (tests 109 and 110), in
        # one NVM subsystem sharing namespace 1. The first has SR-IOV: 4 of max_ioqpairs' 6
        # are flexible resources, so it grants 2 I/O queues until the host gives it flexible
        # ones (Virtualization Management), which take effect at the next function reset.
        # 4 vCPUs, so the driver's interrupt-driven queues (one per CPU) outnumber the 2 and
        # a shrink takes some of those away too. Through the second, the shared namespace is
        # formatted behind the first one's back.
        files = [("c1", 256)]
        args = ["-device", "nvme-subsys,id=subsys2,nqn=orion-changes"]
        args += drive("c1")
        args += ctrl(0, ",subsys=subsys2,max_ioqpairs=6,sriov_max_vfs=1,sriov_vq_flexible=4,sriov_vi_flexible=1")
        # Controllers of one subsystem have its serial number (QEMU insists).
        args += ctrl(1, ",subsys=subsys2", serial="ORION0000")
        args += ["-device", "nvme-ns,drive=c1,nsid=1,shared=on"]
    elif name == "bench":
        # `make bench`: two identical controllers, each with a null-co namespace (NSID 1, reads
        # return zeroes at no storage cost, so the drivers' own cost shows) and a file-backed one
        # (NSID 2, for the verify pass that comes first).
        files = [("f0", 256), ("f1", 256)]
        args = []
        for i in range(2):
            args += ctrl(i, "")
            args += ["-drive", f"driver=null-co,size=4G,read-zeroes=on,if=none,id=null{i}"]
            args += ["-device", f"nvme-ns,drive=null{i},bus=nvme{i},nsid=1"]
            args += drive(f"f{i}")
            args += ["-device", f"nvme-ns,drive=f{i},bus=nvme{i},nsid=2"]
    else:
        raise SystemExit(f"vm.py: unknown profile {name} (single, dual, subsys, odd, intx, faults, changes, bench)")
    return files, args


class Qmp:
    def __init__(self, path):
        self.path = path
        self.sock = None
        self.lock = threading.Lock()

    def connect(self, deadline):
        while time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.path)
                self.sock = s
                self.f = s.makefile("rw")
                json.loads(self.f.readline())  # greeting
                self.execute({"execute": "qmp_capabilities"})
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def execute(self, cmd):
        with self.lock:
            self.f.write(json.dumps(cmd) + "\n")
            self.f.flush()
            while True:
                line = self.f.readline()
                if not line:
                    return {"error": {"desc": "QMP connection closed"}}
                msg = json.loads(line)
                if "event" in msg:
                    continue
                return msg


def kvm_works(args, rundir):
    """A quick probe boot: KVM is used only where it demonstrably runs this kernel."""
    if os.environ.get("ORION_ACCEL") in ("tcg", "kvm"):
        return os.environ["ORION_ACCEL"] == "kvm", "forced by ORION_ACCEL"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm not usable"
    cache_dir = os.environ.get("ORION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "orion-nvme")
    os.makedirs(cache_dir, exist_ok=True)
    cache = os.path.join(cache_dir, "kvm-probe")
    key = f"{os.path.realpath(args.kernel)}:{os.stat(args.kernel).st_mtime_ns}"
    try:
        with open(cache) as f:
            k, verdict = f.read().split("\n")[:2]
            if k == key:
                return verdict == "yes", "cached probe"
    except (OSError, ValueError):
        pass
    probe = subprocess.run(
        [sys.executable, __file__, "--kernel", args.kernel, "--initrd", args.initrd,
         "--profile", "single", "--mode", "probe", "--timeout", "40", "--accel", "kvm",
         "--rundir", os.path.join(rundir, "kvm-probe")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = probe.returncode == 0
    with open(cache, "w") as f:
        f.write(f"{key}\n{'yes' if ok else 'no'}\n")
    return ok, "probe boot " + ("succeeded" if ok else "failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--profile", default="single")
    ap.add_argument("--mode", default="check", choices=["check", "run", "shell", "probe", "bench"])
    ap.add_argument("--args", default="", help="passed to the guest's runner (comma separated)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    ap.add_argument("--smp", type=int, default=None, help="vCPUs (default 2; the changes profile 4)")
    ap.add_argument("--mem", default="2G")
    ap.add_argument("--rundir", default="out/vm")
    ap.add_argument("--results", default=None)
    ap.add_argument("--show-console", action="store_true")
    args = ap.parse_args()

    if args.smp is None:
        args.smp = 4 if args.profile == "changes" else 2
    rundir = os.path.abspath(args.rundir)
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    files, devargs = profile_args(args.profile, rundir)
    for name, mib in files:
        with open(os.path.join(rundir, name), "wb") as f:
            f.truncate(mib << 20)

    accel = args.accel
    why = "requested"
    if accel == "auto":
        ok, why = kvm_works(args, rundir)
        accel = "kvm" if ok else "tcg"
    if args.mode != "probe":
        print(f"[orion] vm: profile {args.profile}, accel {accel.upper()} ({why}), "
              f"{args.smp} vCPUs, timeout {args.timeout} s, logs in {rundir}", file=sys.stderr)

    con_path = os.path.join(rundir, "con.sock")
    ctl_path = os.path.join(rundir, "ctl.sock")
    qmp_path = os.path.join(rundir, "qmp.sock")
    listeners = {}
    for p in (con_path, ctl_path):
        s = socket.socket(socket.AF_UNIX)
        s.bind(p)
        s.listen(1)
        listeners[p] = s

    cpu = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg", "-cpu", "max"]
    append = f"console=ttyS0 panic=-1 oops=panic softlockup_panic=0 orion.mode={args.mode}"
    # The runner's arguments; ORION_PROFILE tells tests which profile they run on.
    append += f" orion.args={args.args + ',' if args.args else ''}ORION_PROFILE={args.profile}"
    if args.profile == "intx":
        append += " pci=nomsi"
    if accel == "tcg" and args.smp > 2:
        # More vCPUs than host cores under TCG: the clocksource watchdog's skew check and the
        # stop_machine it starts were seen livelocked at boot (all CPUs in
        # stop_machine_yield / watchdog_check_skew for 10 minutes); TSC is the emulator's.
        append += " tsc=reliable"
    if os.environ.get("ORION_KERNEL_ARGS"):
        # Extra kernel command line for a one-off run, e.g. pci=nomsi to exercise INTx.
        append += " " + os.environ["ORION_KERNEL_ARGS"]
    cmd = (["qemu-system-x86_64", "-machine", "q35", "-nodefaults", "-display", "none",
            "-no-reboot", "-smp", str(args.smp), "-m", args.mem] + cpu +
           ["-kernel", args.kernel, "-initrd", args.initrd, "-append", append,
            "-chardev", f"socket,id=con,path={con_path}", "-serial", "chardev:con",
            "-chardev", f"socket,id=ctl,path={ctl_path}", "-serial", "chardev:ctl",
            "-qmp", f"unix:{qmp_path},server=on,wait=off"] + devargs)
    with open(os.path.join(rundir, "qemu-cmdline"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    if args.mode == "shell":
        # Interactive: console on this terminal; the control port still goes to a socket.
        i = cmd.index(f"socket,id=con,path={con_path}")
        cmd[i] = "stdio,id=con,signal=off"
        del listeners[con_path]

    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if args.mode != "shell" else None,
                            stderr=open(os.path.join(rundir, "qemu.stderr"), "w"))
    deadline = time.time() + args.timeout
    conns = {}
    for p, s in listeners.items():
        s.settimeout(30)
        try:
            conns[p], _ = s.accept()
        except socket.timeout:
            qemu.kill()
            print(f"[orion] vm: QEMU never connected; see {rundir}/qemu.stderr", file=sys.stderr)
            return 1

    qmp = Qmp(qmp_path)
    qmp_ok = qmp.connect(time.time() + 10)

    console_log = open(os.path.join(rundir, "console.log"), "wb")
    def pump_console(c):
        while True:
            data = c.recv(4096)
            if not data:
                return
            console_log.write(data)
            console_log.flush()
            if args.show_console:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
    if con_path in conns:
        threading.Thread(target=pump_console, args=(conns[con_path],), daemon=True).start()

    results = open(args.results or os.path.join(rundir, "results.txt"), "w")
    ctl = conns[ctl_path]
    ctl.settimeout(1.0)
    buf = b""
    verdict = None
    while verdict is None:
        if time.time() > deadline:
            print(f"[orion] vm: TIMEOUT after {args.timeout} s; killing the guest "
                  f"(console: {rundir}/console.log)", file=sys.stderr)
            results.write("not ok 999 vm: guest timed out\n")
            # Evidence for a hang: where each vCPU is, and QEMU's own view, before the kill.
            # QEMU itself may be stuck: every answer is waited for 10 s at most.
            if qmp_ok:
                with open(os.path.join(rundir, "hang.txt"), "w") as h:
                    try:
                        qmp.sock.settimeout(10)
                        for cmd in ("info status", "info registers -a", "info irq", "info pci"):
                            reply = qmp.execute({"execute": "human-monitor-command",
                                                 "arguments": {"command-line": cmd}})
                            h.write(f"== {cmd}\n{reply.get('return', reply)}\n")
                    except (OSError, ValueError) as e:
                        h.write(f"== QMP did not answer: {e}\n")
                print(f"[orion] vm: QEMU state at the timeout in {rundir}/hang.txt", file=sys.stderr)
            break
        try:
            data = ctl.recv(4096)
        except socket.timeout:
            if qemu.poll() is not None:
                break
            continue
        if not data:
            break
        buf += data
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.decode(errors="replace").rstrip("\r")
            if line.startswith("ORION-QMP "):
                reply = qmp.execute(json.loads(line[len("ORION-QMP "):])) if qmp_ok \
                    else {"error": {"desc": "no QMP"}}
                ctl.sendall(b"ORION-QMP-REPLY " + json.dumps(reply).encode() + b"\n")
                continue
            m = re.match(r"ORION-DONE rc=(\d+)", line)
            if m:
                verdict = int(m.group(1))
                break
            results.write(line + "\n")
            results.flush()
            if args.mode in ("check",) and not args.show_console:
                print(line, flush=True)
            elif args.mode == "bench" and not args.show_console and not line.startswith("BENCH-FIO "):
                print(line, flush=True)
            elif args.mode == "run" and not args.show_console and not line.startswith("ORION-"):
                print(line, flush=True)
    try:
        qemu.wait(timeout=20)
    except subprocess.TimeoutExpired:
        qemu.kill()
        qemu.wait()
    time.sleep(0.2)
    console_log.close()
    if verdict is None and args.mode == "shell":
        # An interactive session ends when the user powers the guest off.
        return 0 if qemu.returncode == 0 else 1
    if verdict is None:
        print(f"[orion] vm: the guest gave no verdict (crashed, hung or QEMU failed); "
              f"console: {rundir}/console.log", file=sys.stderr)
        return 1
    return 0 if verdict == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
