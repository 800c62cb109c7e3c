package bench

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// refreshInterval is how often the operator may change a tenant's uptime figures, and saves the
// uptime histories (internal/uptime.DefaultRefreshInterval and DefaultSaveInterval): the
// steady-down tenants' writes and the shared writes are judged against it.
const refreshInterval = 10 * time.Minute

// idleSetup is what measureIdle needs of the run.
type idleSetup struct {
	n      int
	window time.Duration
	// operators are the operator's processes: one, or one per shard.
	operators []*operatorProcess
	auditLog  string
	probes    *probeServer
	// classOf is the class of every tenant, the warm-up one included.
	classOf map[string]string
}

// measureIdle measures the operator, converged and probing, over the idle window: its requests
// per tenant-hour by class and verb (the API server's audit log, attributed by the tenant each
// request is about), its reconciles, CPU and memory. It fails the benchmark when a target of
// issue 19 is broken:
//
//   - a steady-up tenant: no request at all;
//   - a steady-down tenant: no create or delete, and its writes at least 9 minutes apart (its
//     figures are refreshed once every 10 minutes): at most 6 an hour;
//   - a flapping tenant: no delete and no create but its events, and at most one status write
//     per transition (as the probe server judges its own answers), besides the refresh;
//   - the uptime history shards: each written at most once per save interval (10 minutes).
//
// With several processes (shards), their requests, writes, reconciles, CPU and memory are added
// up. It returns a one-line summary.
func measureIdle(b *testing.B, s idleSetup) string {
	var pids []int
	for _, op := range s.operators {
		pids = append(pids, op.proc.Process.Pid)
	}
	scrape := func() map[string]float64 {
		var all []map[string]float64
		for _, op := range s.operators {
			all = append(all, scrapeMetrics(b, op.metricsAddr))
		}
		return sumMetrics(all)
	}
	statsBefore := s.probes.stats(b)
	metricsBefore := scrape()
	writesBefore := scrapeAllWrites(b, s.operators)
	cpuBefore := cpuByProcess(pids...)
	probeServerCPUBefore := processCPU(s.probes.pid)
	rssStart := rssMiB(pids...)
	from := time.Now()
	memory := sampleMemory(from, pids...)
	time.Sleep(s.window)
	to := time.Now()
	window := to.Sub(from)
	cpu := cpuByProcess(pids...).since(cpuBefore)
	probeServerCPU := processCPU(s.probes.pid) - probeServerCPUBefore
	rssPeak, _ := memory()
	rssEnd := rssMiB(pids...)
	metricsAfter := scrape()
	writesCounted := scrapeAllWrites(b, s.operators) - writesBefore
	statsAfter := s.probes.stats(b)
	// A request is in the audit log once answered; give the last ones time to be.
	time.Sleep(2 * time.Second)
	var requests []operatorRequest
	for _, op := range s.operators {
		requests = append(requests, operatorRequests(b, s.auditLog, op.user, from, to)...)
	}
	r := newIdleRequests(requests, s.classOf, window)

	hours := window.Hours()
	tenants := len(s.classOf)
	reconciles := sumSeries(metricsAfter, "controller_runtime_reconcile_total", `controller="tenant"`) -
		sumSeries(metricsBefore, "controller_runtime_reconcile_total", `controller="tenant"`)
	transitions := statsAfter[flapping].Transitions - statsBefore[flapping].Transitions
	probesPerSecond := 0.0
	for _, c := range classes {
		probesPerSecond += float64(statsAfter[c].Probes-statsBefore[c].Probes) / window.Seconds()
	}
	auditWrites := 0
	for _, requests := range r.byClass {
		for _, req := range requests {
			if isWrite(req.verb) {
				auditWrites++
			}
		}
	}

	fmt.Printf("tenants=%d idle %s: operator requests per tenant-hour by class (the API server's audit log); %.1f probes/s answered\n",
		s.n, window.Round(time.Second), probesPerSecond)
	for _, class := range classes {
		requests := r.byClass[class]
		var verbs []string
		for _, verb := range auditVerbs {
			verbs = append(verbs, fmt.Sprintf("%s %.2f", verb, r.perTenantHour(class, r.count(class, func(q operatorRequest) bool { return q.verb == verb }))))
		}
		fmt.Printf("  %-4s (%d tenants): %s | %s\n", class, r.tenants[class], strings.Join(verbs, ", "),
			byVerbAndResource(requests, 1/float64(max(1, r.tenants[class]))/hours))
	}
	fmt.Printf("  flapping: %d transitions (%.1f a tenant-hour), %.2f status writes and %.2f events per transition\n",
		transitions, float64(transitions)/float64(max(1, r.tenants[flapping]))/hours,
		float64(r.count(flapping, isStatusWrite))/float64(max(1, transitions)),
		float64(r.count(flapping, isEvent))/float64(max(1, transitions)))
	fmt.Printf("  steady-down: at most %d writes to one tenant; closest two writes to one tenant: %s\n",
		r.mostWrites(steadyDown), orNone(r.closestWrites(steadyDown)))
	fmt.Printf("  shared uptime history shards, per hour for the whole operator: %s\n", byVerbAndResource(r.byClass[sharedOwner], 1/hours))
	fmt.Printf("  for no one tenant (watches and lists of a kind), per hour: %s\n", byVerbAndResource(r.byClass[""], 1/hours))
	if len(r.byClass["unknown"]) > 0 {
		fmt.Printf("  for tenants the benchmark did not create, per hour: %s (%s)\n", byVerbAndResource(r.byClass["unknown"], 1/hours), examples(r.byClass["unknown"], 5))
	}
	fmt.Printf("tenants=%d idle: operator writes %d by its own counter, %d in the audit log; reconciles %.2f a tenant-hour\n",
		s.n, writesCounted, auditWrites, reconciles/float64(tenants)/hours)
	fmt.Printf("tenants=%d idle cpu seconds: %s, probe server %.1f; the operator used %.1f %% of a core\n",
		s.n, cpu, probeServerCPU, 100*cpu["operator"]/window.Seconds())
	fmt.Printf("tenants=%d idle RSS: %.0f MiB at the start, %.0f MiB at the highest, %.0f MiB at the end\n", s.n, rssStart, rssPeak, rssEnd)

	// The targets.
	if up := r.byClass[steadyUp]; len(up) > 0 {
		b.Errorf("steady-up tenants: %d requests in %s, want none: %s; for example %s", len(up), window.Round(time.Second),
			byVerbAndResource(up, 1), examples(up, 5))
	}
	for _, class := range classes {
		bad := func(q operatorRequest) bool {
			return q.verb == "delete" || q.verb == "deletecollection" || (q.verb == "create" && (class != flapping || !isEvent(q)))
		}
		if n := r.count(class, bad); n > 0 {
			var requests []operatorRequest
			for _, q := range r.byClass[class] {
				if bad(q) {
					requests = append(requests, q)
				}
			}
			b.Errorf("%s tenants: %d creates or deletes in %s, want none: %s; for example %s", class, n, window.Round(time.Second),
				byVerbAndResource(requests, 1), examples(requests, 5))
		}
	}
	if closest, tenant := r.closestWrites(steadyDown); closest > 0 && closest < refreshInterval*9/10 {
		var requests []operatorRequest
		for _, q := range r.byClass[steadyDown] {
			if q.tenant == tenant {
				requests = append(requests, q)
			}
		}
		b.Errorf("steady-down tenant %s written twice within %s, want at most once per %s: %s", tenant, closest.Round(time.Second),
			refreshInterval, examples(requests, 5))
	}
	// Each flapping tenant may also have its figures refreshed, and a transition just before the
	// window be written in it.
	refreshes := r.tenants[flapping] * int(math.Ceil(window.Minutes()/refreshInterval.Minutes()))
	flapWrites := r.count(flapping, func(q operatorRequest) bool { return isWrite(q.verb) && !isEvent(q) })
	if flapWrites > transitions+refreshes+r.tenants[flapping] {
		b.Errorf("flapping tenants: %d writes for %d transitions, want at most one per transition besides %d refreshes: %s",
			flapWrites, transitions, refreshes, byVerbAndResource(r.byClass[flapping], 1))
	}
	if events := r.count(flapping, isEvent); events > transitions+r.tenants[flapping] {
		b.Errorf("flapping tenants: %d events for %d transitions, want at most one per transition", events, transitions)
	}
	perShard := map[string]int{}
	for _, q := range r.byClass[sharedOwner] {
		if isWrite(q.verb) {
			perShard[q.uri]++
		}
	}
	for shard, n := range perShard {
		if allowed := int(math.Ceil(window.Minutes() / refreshInterval.Minutes())); n > allowed {
			b.Errorf("uptime history shard %s written %d times in %s, want at most %d", shard, n, window.Round(time.Second), allowed)
		}
	}

	upRate := r.perTenantHour(steadyUp, len(r.byClass[steadyUp]))
	downWrites := r.perTenantHour(steadyDown, r.count(steadyDown, func(q operatorRequest) bool { return isWrite(q.verb) }))
	perTransition := float64(flapWrites) / float64(max(1, transitions))
	sharedWrites := float64(r.count(sharedOwner, func(q operatorRequest) bool { return isWrite(q.verb) })) / hours
	operatorCore := 100 * cpu["operator"] / window.Seconds()
	b.ReportMetric(upRate, "idle-requests/steady-up-tenant-hour")
	b.ReportMetric(downWrites, "idle-writes/steady-down-tenant-hour")
	b.ReportMetric(perTransition, "idle-writes/flap-transition")
	b.ReportMetric(sharedWrites, "idle-shared-writes/hour")
	b.ReportMetric(reconciles/float64(tenants)/hours, "idle-reconciles/tenant-hour")
	b.ReportMetric(operatorCore, "idle-operator-%core")
	b.ReportMetric(rssPeak, "MiB-RSS-idle")
	return fmt.Sprintf("requests/steady-up-tenant-hour=%.2f writes/steady-down-tenant-hour=%.2f writes/flap-transition=%.2f shared-writes/hour=%.1f reconciles/tenant-hour=%.2f operator-cpu=%.1fs (%.1f%% of a core) RSS=%.0f-%.0fMiB",
		upRate, downWrites, perTransition, sharedWrites, reconciles/float64(tenants)/hours, cpu["operator"], operatorCore, min(rssStart, rssEnd), rssPeak)
}

// isEvent tells whether a request is about an event (events are how transitions are told).
func isEvent(q operatorRequest) bool { return strings.HasPrefix(q.resource, "events") }

// isStatusWrite tells whether a request writes a Tenant's status.
func isStatusWrite(q operatorRequest) bool { return isWrite(q.verb) && q.resource == "tenants/status" }

func orNone(d time.Duration, tenant string) string {
	if d == 0 {
		return "no tenant written twice"
	}
	return fmt.Sprintf("%s (%s)", d.Round(time.Second), tenant)
}
