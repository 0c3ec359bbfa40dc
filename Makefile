# tether's build. The two commands a newcomer needs: `make demo` and `make test`.
# Everything is built into bin/ (ignored by git) and cached there and in Go's
# build cache, so repeat runs are fast.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
export TETHER_BIN_DIR := $(BIN)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

KUBE_VERSION := v1.35.4
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=35
KUBE_BINS := $(addprefix bin/,kube-apiserver kube-controller-manager kube-scheduler kubectl)
TOOLS := $(KUBE_BINS) bin/etcd bin/kwok

E2E_TIMEOUT ?= 40m

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.PHONY: demo
demo: deps tools build ## start a local control plane and git server, sync the example app, show it healthy
	$(GO) run ./e2e/cmd/demo --bin-dir $(BIN) --examples examples --manifests manifests

.PHONY: test
test: unit e2e ## run every test: unit tests, then the end-to-end suite

.PHONY: unit
unit: deps ## unit tests with the race detector, and the alert rules' promtool tests
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 ./...
	promtool check rules manifests/alerts/tether.rules.yaml
	promtool test rules manifests/alerts/tether.rules.test.yaml

.PHONY: e2e
e2e: deps tools ## end-to-end tests against a real control plane and git server (serially)
	$(GO) vet -tags e2e ./e2e/...
	$(GO) test -tags e2e -count=1 -p 1 -timeout $(E2E_TIMEOUT) ./e2e/...

# The bench is a Go module of its own (bench/go.mod: Flux's apply engine and
# the kubectl libraries bring their own k8s.io versions), built into bin/.
# BENCH_CLIUTILS=full also runs the slow cli-utils steps after its cold apply
# (about 15 more minutes); BENCH_CLIUTILS=off leaves cli-utils out.
# BENCH_SCALE=1 adds the long steps: 5,000 objects, 100 syncs, a 4,000-document
# build beside the kustomize CLI (about 20 more minutes).
BENCH_SCALE ?= 0
# The kustomize CLI release built on sigs.k8s.io/kustomize/api v0.20.1, the
# version tether renders with (go.mod).
KUSTOMIZE_VERSION := v5.7.1

.PHONY: bench
bench: deps tools build bin/kustomize ## tether against Flux, kubectl, the raw floor and cli-utils (see bench/)
	cd bench && $(GO) build -o $(BIN)/bench .
	$(BIN)/bench --bin-dir $(BIN) --cliutils "$${BENCH_CLIUTILS:-cold}" --scale=$(if $(filter 1,$(BENCH_SCALE)),true,false)

bin/kustomize:
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: build
build: bin/tether ## build bin/tether

.PHONY: bin/tether
bin/tether:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/tether

.PHONY: cluster
cluster: deps tools ## run the local control plane by hand until Ctrl-C
	$(GO) run ./e2e/cmd/cluster up

.PHONY: tools
tools: $(TOOLS) ## build the control plane binaries into bin/ (cached)

$(KUBE_BINS) &: e2e/tools/kube/go.mod e2e/tools/kube/go.sum
	@echo "tools: building Kubernetes $(KUBE_VERSION) (several minutes the first time)"
	cd e2e/tools/kube && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $(BIN)/ \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
	touch $(KUBE_BINS)

bin/etcd: e2e/tools/etcd/go.mod e2e/tools/etcd/go.sum
	cd e2e/tools/etcd && $(GO) build -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	touch $@

bin/kwok: e2e/tools/kwok/go.mod e2e/tools/kwok/go.sum
	cd e2e/tools/kwok && $(GO) build -o $(BIN)/kwok sigs.k8s.io/kwok/cmd/kwok
	touch $@

.PHONY: deps
deps: ## install missing Debian packages (git, openssh, prometheus)
	@hack/deps.sh

.PHONY: clean
clean: ## remove bin/
	rm -rf bin
