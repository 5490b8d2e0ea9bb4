# conmon-go: a per-container monitor for podman and CRI-O.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
# Go from the PATH, else where go.dev's archive puts it.
GO ?= $(or $(shell command -v go),/usr/local/go/bin/go)
VERSION := 0.1.0
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
# The second line of --version: "commit: conmon-go <version> <revision>".
LDFLAGS := -s -w -X 'github.com/conmon-go/conmon-go/monitor.Commit=conmon-go $(VERSION) $(REVISION)'
# On linux/amd64 the binary enters through monitor.preforkEntry, which forks the monitor
# before the Go runtime starts, so a create pays for one Go start-up, not two
# (docs/lifecycle.md §3.3). Elsewhere, and in a plain `go build`, the launcher re-executes
# itself instead.
ifeq ($(shell $(GO) env GOOS GOARCH | tr '\n' ' '),linux amd64 )
LDFLAGS += -E github.com/conmon-go/conmon-go/monitor.preforkEntry
endif
BIN := bin/conmon-go
# Go 1.26's default garbage collector (Green Tea) costs each idle monitor about 50 kB more
# anonymous memory than the classic one (make bench), and a heap this small gains nothing
# from it. Go 1.27 removes the opt-out, hence the version check.
BUILD_GOEXPERIMENT := $(if $(filter go1.26%,$(shell $(GO) env GOVERSION)),nogreenteagc)
# Diagnostics go through Logger interfaces, whose methods go vet cannot see through: it
# checks their formats when told the names.
PRINTF_FUNCS := Warnf,Debugf,Infof,Tracef,warnf
# Integration tests run the binary built here (and /usr/bin/conmon as the reference).
export CONMON_BINARY := $(CURDIR)/$(BIN)

.PHONY: all build test fuzz stress demo install bench clean FORCE

all: build

build: $(BIN)

# The stamp changes only when the version or the commit does, so that --version never
# names the commit of an earlier build.
STAMP := bin/.stamp
$(STAMP): FORCE
	@mkdir -p bin
	@echo '$(VERSION) $(REVISION)' | cmp -s - $@ || echo '$(VERSION) $(REVISION)' > $@

FORCE:

$(BIN): $(shell find . -name '*.go' -not -path './hack/*') go.mod go.sum $(STAMP)
	CGO_ENABLED=0 GOEXPERIMENT=$(BUILD_GOEXPERIMENT) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/conmon-go

# Unit tests and the root integration suites (they skip with a message when not root or
# when runc/podman/busybox are missing), then short fuzz runs of the parsers, the sync
# messages, the log records and the attach framing. hack/setup.sh installs what they need
# first (as root on Debian; otherwise it says what is missing).
test: build
	sh hack/setup.sh test
	$(GO) vet -printf.funcs=$(PRINTF_FUNCS) ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# Counted rather than timed: a time limit that expires while the engine minimises a new
# input is reported as a failure ("context deadline exceeded").
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseControl$$' -fuzztime 500000x ./monitor/ctl
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 200000x ./monitor/cli
	$(GO) test -run '^$$' -fuzz '^FuzzParseEvents$$' -fuzztime 200000x ./monitor/oom
	$(GO) test -run '^$$' -fuzz '^FuzzScan$$' -fuzztime 200000x ./ptyio/k8sfile
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime 20000x ./ptyio/k8sfile
	$(GO) test -run '^$$' -fuzz '^FuzzSyncMessage$$' -fuzztime 100000x ./monitor
	$(GO) test -run '^$$' -fuzz '^FuzzRecordsReassemble$$' -fuzztime 10000x ./ptyio/k8sfile
	$(GO) test -run '^$$' -fuzz '^FuzzClientDatagramsReachStdin$$' -fuzztime 5000x ./seqpacket
	$(GO) test -run '^$$' -fuzz '^FuzzOutputFrames$$' -fuzztime 5000x ./seqpacket

# The fault and load suite (hack/e2e/stress) in its long form: 10 000 start/exit cycles,
# 1 000 attach and 200 exec cycles on one monitor, 100 creates at once against conmon,
# signals and faults, a minute of idle CPU; then hostile output at full size (a 1 GiB line,
# 16 MiB of 1-byte writes, 16 MiB through a terminal). `make test` runs both short. It
# prints a table of figures at the end and takes a quarter of an hour or more.
stress: build
	CONMON_STRESS=1 $(GO) test -count=1 -v -timeout 3h ./hack/e2e/stress/
	E2E_FLOOD_BYTES=1G $(GO) test -count=1 -v -timeout 30m -run '^TestFlood' ./hack/e2e/direct/

# Builds a busybox bundle and runs one container under conmon-go, showing its log and
# exit status.
demo: build
	sh hack/setup.sh demo
	sh hack/demo.sh $(CURDIR)/$(BIN)

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/conmon-go
	ln -sf conmon-go $(DESTDIR)$(BINDIR)/conmon-go-runtime
	install -D -m 0644 docs/conmon-go.8 $(DESTDIR)$(MANDIR)/man8/conmon-go.8
	install -D -m 0644 docs/conmon-go-runtime.8 $(DESTDIR)$(MANDIR)/man8/conmon-go-runtime.8

bench: build
	$(GO) run ./hack/bench -monitor $(CURDIR)/$(BIN)

clean:
	rm -rf bin
