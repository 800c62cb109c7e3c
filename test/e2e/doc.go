// Package e2e holds the end-to-end tests: the local stack of make demo (hack/dev-cluster.sh: the
// control plane with kube-controller-manager and kube-scheduler, a kwok node, cert-manager's
// controllers) with the operator built and run as its own process, and user stories checked
// against it. They run only with TENANTOPS_E2E=1 (make e2e); without it they skip.
package e2e
