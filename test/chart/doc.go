// Package chart tests how tenant-operator is installed: the Helm chart in charts/tenant-operator,
// the kustomizations in config/, the monitoring rules and dashboard in config/prometheus, and the
// Dockerfile. It renders the chart with bin/helm and config/default with bin/kustomize (make
// chart-tools), checks the security properties of what they render, and validates every rendered
// object on the real API server of the local control plane (make control-plane) by server-side
// dry-run.
package chart
