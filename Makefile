# tenant-operator: build, test and run on a local control plane built from Go modules.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
export PATH := $(LOCALBIN):$(LOCALBIN)/control-plane:$(PATH)

CONTROLLER_GEN_VERSION ?= v0.23.0
VERSITYGW_VERSION ?= v1.8.0
KUSTOMIZE_VERSION ?= v5.7.1
HELM_VERSION ?= v3.19.0
KWOK_VERSION ?= v0.8.0
CRD_REF_DOCS_VERSION ?= v0.3.0

CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs-$(CRD_REF_DOCS_VERSION)
PROMETHEUS_OPERATOR_VERSION ?= v0.85.0
KUBECTL ?= $(LOCALBIN)/control-plane/kubectl
KUBECONFIG ?= $(LOCALBIN)/dev/kubeconfig
export KUBECONFIG

TEST_TIMEOUT ?= 40m

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) $(CRD_REF_DOCS) ## Generate CRDs, RBAC and webhook manifests and docs/api-reference.md; copy cert-manager's CRDs.
	$(CONTROLLER_GEN) rbac:roleName=tenant-operator crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	bash hack/external-crds.sh
	PROMETHEUS_OPERATOR_VERSION=$(PROMETHEUS_OPERATOR_VERSION) bash hack/prometheus-operator-crds.sh
	bash hack/chart-sync.sh
	CRD_REF_DOCS=$(CRD_REF_DOCS) bash hack/api-docs.sh

.PHONY: api-docs
api-docs: $(CRD_REF_DOCS) ## Generate docs/api-reference.md from the API types (make manifests does it too).
	CRD_REF_DOCS=$(CRD_REF_DOCS) bash hack/api-docs.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate ## Fail when generated files or go.mod are stale, or vet finds problems.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- api config charts docs/api-reference.md go.mod go.sum)" ]; then \
	  echo "Generated files or go.mod are stale; run 'make manifests generate' and 'go mod tidy' and commit:"; \
	  git status --porcelain -- api config charts docs/api-reference.md go.mod go.sum; git --no-pager diff --stat -- api config charts docs/api-reference.md go.mod go.sum; exit 1; fi
	cd test/rules && go mod tidy && go vet ./...
	@if [ -n "$$(git status --porcelain -- test/rules/go.mod test/rules/go.sum)" ]; then echo "test/rules/go.mod is stale; run 'cd test/rules && go mod tidy' and commit"; exit 1; fi
	@if [ -n "$$(gofmt -l $$(git ls-files '*.go'))" ]; then echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; fi
	go vet ./...

.PHONY: test
test: control-plane test-tools chart-tools stack-tools ## Run all tests: unit, integration (envtest, real PostgreSQL and S3) and end-to-end (the demo's stack).
	TENANTOPS_E2E=1 KUBEBUILDER_ASSETS=$(LOCALBIN)/control-plane go test ./... -timeout $(TEST_TIMEOUT) -count=1
	cd test/rules && go test ./... -count=1

.PHONY: test-faults
test-faults: control-plane stack-tools $(LOCALBIN)/versitygw ## Run the fault-injection suite alone (part of make test; FAULTS_SEED replays, FAULTS_TENANTS and FAULTS_KILLS scale it; docs/reliability.md).
	TENANTOPS_FAULTS=1 go test ./test/faults/ -timeout 40m -count=1 -v -run "$(or $(FAULTS_RUN),.)"

.PHONY: test-rules
test-rules: ## Evaluate every alert of config/prometheus on synthetic series with Prometheus' rule engine (its own module, test/rules).
	cd test/rules && go test ./... -count=1

.PHONY: bench
bench: control-plane ## Run the benchmarks and print their figures (about 35 minutes: BENCH_TENANTS, BENCH_IDLE in docs/performance.md).
	KUBEBUILDER_ASSETS=$(LOCALBIN)/control-plane go test ./test/bench/... -run '^$$' -bench . -benchtime 1x -timeout 120m

.PHONY: bench-backup
bench-backup: test-tools ## Benchmark the backup agent on a 1 GiB database: logical against pg_dump, then physical (bench-physical).
	bash hack/bench-backup.sh
	bash hack/bench-physical.sh

.PHONY: bench-physical
bench-physical: test-tools ## Benchmark physical backups, WAL archiving and point-in-time restore on PostgreSQL 18 (about 10 minutes; docs/performance.md).
	bash hack/bench-physical.sh

##@ Build

.PHONY: build
build: ## Build the tenant-operator binary.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/tenant-operator .

##@ Install

.PHONY: helm-lint
helm-lint: chart-tools ## Lint the Helm chart with its default values and with every option on.
	$(LOCALBIN)/helm lint --strict charts/tenant-operator
	$(LOCALBIN)/helm lint --strict charts/tenant-operator -f test/chart/testdata/values-all.yaml

.PHONY: test-chart
test-chart: control-plane chart-tools ## Render the chart and config/default and validate them on the local control plane.
	KUBEBUILDER_ASSETS=$(LOCALBIN)/control-plane go test ./test/chart/... -count=1 -v

##@ Local control plane

.PHONY: control-plane
control-plane: ## Build (or find cached) etcd, kube-apiserver, kube-controller-manager, kubectl.
	bash hack/control-plane.sh >/dev/null

.PHONY: test-tools
test-tools: $(LOCALBIN)/versitygw ## Install the real parts the tests start: S3 server, PostgreSQL.
	@if [ -f hack/postgres.sh ]; then bash hack/postgres.sh; fi

.PHONY: dev-cluster
dev-cluster: ## Start the local cluster: control plane, kube-controller-manager, a kwok node, cert-manager's controllers, our CRDs and webhooks; writes bin/dev/kubeconfig.
	bash hack/dev-cluster.sh up

.PHONY: dev-cluster-down
dev-cluster-down: ## Stop the local cluster and cert-manager's controllers.
	bash hack/dev-cluster.sh down

.PHONY: install
install: manifests ## Install the CRDs into the cluster of KUBECONFIG.
	$(KUBECTL) apply --server-side --force-conflicts -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRDs from the cluster of KUBECONFIG.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: run
run: build install ## Run the operator (webhook included) against the cluster of KUBECONFIG.
	bash hack/run-local.sh

.PHONY: demo
demo: ## Start the local cluster and the operator, apply the samples, show the tenants Ready with their certificates.
	bash hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop the operator and the local cluster the demo started.
	bash hack/demo.sh down

.PHONY: stack-tools
stack-tools: control-plane ## Build (or find cached) kwok and cert-manager's controller for the demo and end-to-end stack.
	bash hack/dev-cluster.sh tools

.PHONY: e2e
e2e: ## End-to-end tests on the local stack of make demo, which they start and stop themselves.
	TENANTOPS_E2E=1 go test ./test/e2e/... -count=1 -v -timeout 15m

##@ Tools

$(CONTROLLER_GEN):
	bash hack/go-install.sh $@ sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_GEN_VERSION)

$(HELM):
	bash hack/go-install.sh $@ helm.sh/helm/v3/cmd/helm $(HELM_VERSION)

# go-install.sh names the cached file after the package's last element (v5), but go install names
# the command kustomize: point the link at that.
$(KUSTOMIZE):
	bash hack/go-install.sh $@ sigs.k8s.io/kustomize/kustomize/v5 $(KUSTOMIZE_VERSION)
	ln -sfn "$$(dirname "$$(readlink $@)")/kustomize" $@

.PHONY: chart-tools
chart-tools: $(HELM) $(KUSTOMIZE) ## Install helm and kustomize; bin/helm and bin/kustomize name the pinned versions.
	ln -sfn $(notdir $(HELM)) $(LOCALBIN)/helm
	ln -sfn $(notdir $(KUSTOMIZE)) $(LOCALBIN)/kustomize

$(CRD_REF_DOCS):
	bash hack/go-install.sh $@ github.com/elastic/crd-ref-docs $(CRD_REF_DOCS_VERSION)

$(LOCALBIN)/versitygw:
	bash hack/go-install.sh $@ github.com/versity/versitygw/cmd/versitygw $(VERSITYGW_VERSION)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
