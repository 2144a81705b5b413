# orion-nvme: the front door. `make run` shows the driver working, `make check` runs all tests.
#
#   make setup        install Debian packages, bindgen-cli and the Linux 7.3 source (idempotent)
#   make kernel       build the cached 7.3 test kernel (DEBUG=1: the KASAN/lockdep variant)
#   make / module     build orion_nvme.ko (against the test kernel, or KDIR=/your/linux/build)
#   make run          boot the VM, load orion_nvme, show it bound (PROFILE=single|dual|subsys)
#   make shell        boot the VM with an interactive shell on the console
#   make check        host tests, clippy, rustfmt, fuzz, then the VM selftests; ends "N passed, N failed"
#                     (DEBUG=1: on the KASAN/lockdep/kmemleak kernel; LONG=1: 500 resets, 50 unplugs)
#   make bench        fio in the VM: the C nvme driver against orion_nvme on identical controllers,
#                     A B A B; out/bench/results.json and a table (BENCH_C_ONLY=1: C on both)
#   make bench-core   instructions per 4 KiB read through the core on the simulator (callgrind)
#   make clean        remove build products from the checkout (caches stay)

SHELL := /bin/bash
DEBUG ?= 0
PROFILE ?= single
KMAKE_FLAGS ?= LLVM=-19 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc
KVARIANT := $(if $(filter 1,$(DEBUG)),--debug,)
# An explicit KDIR builds against that tree and skips the test kernel entirely.
KDIR ?=
kdir = $(or $(KDIR),$(shell scripts/kernel.sh $(KVARIANT) --print-dir))
OUT := out
INITRD := $(OUT)/initramfs$(if $(filter 1,$(DEBUG)),-debug,).cpio.gz

.PHONY: all setup kernel module run shell check clean host-test initramfs bench bench-core

all: module

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kernel.sh $(KVARIANT)

module: $(if $(KDIR),,kernel)
	$(MAKE) -C $(kdir) M=$(CURDIR) $(KMAKE_FLAGS) modules

initramfs: module
	@mkdir -p $(OUT)
	@scripts/initramfs.sh $(kdir) orion_nvme.ko $(INITRD)

run: initramfs
	@scripts/vm.py --kernel $(kdir)/arch/x86/boot/bzImage --initrd $(INITRD) \
		--profile $(PROFILE) --mode run --rundir $(OUT)/vm-run --timeout 300

shell: initramfs
	@scripts/vm.py --kernel $(kdir)/arch/x86/boot/bzImage --initrd $(INITRD) \
		--profile $(PROFILE) --mode shell --rundir $(OUT)/vm-shell --timeout 86400

host-test:
	cargo test --workspace
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all -- --check

check:
	@DEBUG=$(DEBUG) scripts/check.sh

bench: initramfs
	@scripts/bench.sh $(kdir) $(INITRD)

bench-core: setup
	@scripts/bench-core.sh

clean:
	-[ -d "$(kdir)" ] && $(MAKE) -C $(kdir) M=$(CURDIR) $(KMAKE_FLAGS) clean
	rm -rf $(OUT)
