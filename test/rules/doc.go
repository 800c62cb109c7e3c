// Package rules evaluates the alerts of config/prometheus/prometheus-rule.yaml with Prometheus'
// own rule engine: its tests run every alert against synthetic series, as `promtool test rules`
// does, and FiringTime and Sweep tell when TenantDown fires for a given timeline of the
// tenantops_tenant_up gauge at every phase of scrapes and evaluations. It is a module of its own
// so that Prometheus and its dependencies stay out of the operator's go.mod.
package rules
