package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/builders"
)

// The API server's audit log tells the operator's requests apart by tenant: its own request
// counter (rest_client_requests_total) has no tenant label. Every request is logged at the
// Metadata level (no bodies), in every phase, so that the floor and the operator pay its cost alike.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

// auditFlags are the kube-apiserver flags that write the audit log into dir.
func auditFlags(b *testing.B, dir string) (flags map[string]string, logPath string) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath = filepath.Join(dir, "audit.log")
	return map[string]string{
		"audit-policy-file": policy,
		"audit-log-path":    logPath,
		// Never rotated during a run (the default rotates at 100 MB).
		"audit-log-maxsize":   "100000",
		"audit-log-maxbackup": "1",
		"audit-log-format":    "json",
		"audit-log-mode":      "blocking",
	}, logPath
}

// auditEvent is the part of an audit.k8s.io/v1 Event the benchmark reads.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
}

// operatorRequest is one request of the operator, with whose it is.
type operatorRequest struct {
	at       time.Time
	verb     string
	resource string // resource[/subresource]
	uri      string
	// tenant is the tenant it is for, sharedOwner for the uptime history shards, "" when it is
	// for no one tenant (a watch or list of a kind, a lease).
	tenant string
}

// sharedOwner stands for the uptime history shards, which hold every tenant's history.
const sharedOwner = "(shared)"

// operatorRequests reads the requests of user sent in [from, to) from the audit log, each once
// (a request has an event per stage: watches one when they start and one when they end).
func operatorRequests(b *testing.B, logPath, user string, from, to time.Time) []operatorRequest {
	f, err := os.Open(logPath)
	if err != nil {
		b.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []operatorRequest
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for scanner.Scan() {
		line := scanner.Bytes()
		// Cheap filter before decoding: most of the log is the other phases' requests.
		if !strings.Contains(string(line), `"username":"`+user+`"`) {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			b.Fatalf("audit log: %v", err)
		}
		if ev.User.Username != user || seen[ev.AuditID] || ev.RequestReceivedTimestamp.Before(from) || !ev.RequestReceivedTimestamp.Before(to) {
			continue
		}
		seen[ev.AuditID] = true
		r := operatorRequest{at: ev.RequestReceivedTimestamp, verb: ev.Verb, uri: ev.RequestURI}
		if ev.ObjectRef != nil {
			r.resource = ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				r.resource += "/" + ev.ObjectRef.Subresource
			}
			r.tenant = tenantOf(ev.ObjectRef.Resource, ev.ObjectRef.Namespace, ev.ObjectRef.Name)
		}
		out = append(out, r)
	}
	if err := scanner.Err(); err != nil {
		b.Fatalf("audit log: %v", err)
	}
	return out
}

// tenantOf tells which tenant an object is of, by its name: objects in the namespace
// tenant-<name>, the namespace itself, the Tenant, its cluster-scoped reader role and binding, its
// probe Secret in the operator's namespace, and the events about it (named <tenant>.<time>, in
// the default namespace, as a Tenant is cluster-scoped). The uptime history shards are shared.
func tenantOf(resource, namespace, name string) string {
	switch {
	case namespace == operatorNamespace && resource == "configmaps" && strings.HasPrefix(name, "uptime-history-"):
		return sharedOwner
	case namespace == operatorNamespace && strings.HasPrefix(name, builders.NamespacePrefix) &&
		(strings.HasSuffix(name, "-probe") || strings.HasSuffix(name, "-uptime")):
		// tenant-<name>-probe (Secret), tenant-<name>-uptime (history of an earlier layout)
		return name[len(builders.NamespacePrefix):strings.LastIndexByte(name, '-')]
	case namespace == operatorNamespace:
		// tenant-operator-system is no tenant's namespace, though it starts like one.
		return ""
	case strings.HasPrefix(namespace, builders.NamespacePrefix):
		return strings.TrimPrefix(namespace, builders.NamespacePrefix)
	case resource == "namespaces" && strings.HasPrefix(name, builders.NamespacePrefix):
		return strings.TrimPrefix(name, builders.NamespacePrefix)
	case resource == "tenants":
		return name
	case (resource == "clusterroles" || resource == "clusterrolebindings") && strings.HasPrefix(name, "tenancy:tenant-reader:"):
		return strings.TrimPrefix(name, "tenancy:tenant-reader:")
	case resource == "events" && strings.Contains(name, "."):
		return name[:strings.LastIndexByte(name, '.')]
	}
	return ""
}

// isWrite tells whether an audit verb changes something.
func isWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// auditVerbs are the verbs the tables show, in order.
var auditVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

// idleRequests are the operator's requests in the idle window, by owner.
type idleRequests struct {
	window time.Duration
	// tenants by class, and the class of each tenant.
	tenants map[string]int
	classOf map[string]string
	// byClass: class (or sharedOwner, or "" for no one tenant, or "unknown") to requests.
	byClass map[string][]operatorRequest
}

func newIdleRequests(requests []operatorRequest, classOf map[string]string, window time.Duration) *idleRequests {
	r := &idleRequests{window: window, tenants: map[string]int{}, classOf: classOf, byClass: map[string][]operatorRequest{}}
	for _, c := range classOf {
		r.tenants[c]++
	}
	for _, req := range requests {
		owner := req.tenant
		if owner != "" && owner != sharedOwner {
			if owner = classOf[req.tenant]; owner == "" {
				owner = "unknown"
			}
		}
		r.byClass[owner] = append(r.byClass[owner], req)
	}
	return r
}

// count counts the requests of a class that match.
func (r *idleRequests) count(class string, match func(operatorRequest) bool) int {
	n := 0
	for _, req := range r.byClass[class] {
		if match(req) {
			n++
		}
	}
	return n
}

// perTenantHour is a class's count as a rate per tenant and hour.
func (r *idleRequests) perTenantHour(class string, count int) float64 {
	return float64(count) / float64(max(1, r.tenants[class])) / r.window.Hours()
}

// byVerbAndResource lists a class's requests as "verb resource count", most first.
func byVerbAndResource(requests []operatorRequest, scale float64) string {
	counts := map[string]int{}
	for _, req := range requests {
		counts[req.verb+" "+req.resource]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return counts[keys[i]] > counts[keys[j]] || counts[keys[i]] == counts[keys[j]] && keys[i] < keys[j]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(counts[k])*scale))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// examples lists up to n distinct request URIs (with their verbs) of requests, for finding where
// unexpected requests come from.
func examples(requests []operatorRequest, n int) string {
	seen := map[string]bool{}
	var out []string
	for _, req := range requests {
		k := strings.ToUpper(req.verb) + " " + req.uri
		if !seen[k] && len(out) < n {
			seen[k] = true
			out = append(out, k)
		}
	}
	return strings.Join(out, "; ")
}

// writesByTenant groups a class's writes by tenant, in time order, events aside (an event is
// told with the status write of the same pass).
func (r *idleRequests) writesByTenant(class string) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, req := range r.byClass[class] {
		if isWrite(req.verb) && !isEvent(req) {
			out[req.tenant] = append(out[req.tenant], req.at)
		}
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out
}

// closestWrites is the shortest time between two writes (events aside) for one tenant of the
// class, and the tenant; zero when no tenant was written twice.
func (r *idleRequests) closestWrites(class string) (time.Duration, string) {
	var closest time.Duration
	var who string
	for tenant, ts := range r.writesByTenant(class) {
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); closest == 0 || d < closest {
				closest, who = d, tenant
			}
		}
	}
	return closest, who
}

// mostWrites is the largest number of writes (events aside) for one tenant of the class.
func (r *idleRequests) mostWrites(class string) int {
	most := 0
	for _, ts := range r.writesByTenant(class) {
		most = max(most, len(ts))
	}
	return most
}
