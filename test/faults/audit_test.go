package faults

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// auditWrite is what the suite reads of a write in the audit log.
type auditWrite struct {
	Verb             string    `json:"verb"`
	RequestReceived  time.Time `json:"requestReceivedTimestamp"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		Resource, Subresource, Namespace, Name string
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditedWrites reads the audit log (which records writes only) for user, as the operator
// impersonates it: how many of its events the log holds at all, and the writes of it the API
// server accepted in [from, to), leases excepted.
func auditedWrites(t *testing.T, user string, from, to time.Time) (events int, accepted []auditWrite) {
	t.Helper()
	f, err := os.Open(cluster.AuditLog())
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for scanner.Scan() {
		var e auditWrite
		if json.Unmarshal(scanner.Bytes(), &e) != nil || e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != user {
			continue
		}
		events++
		if e.ObjectRef == nil || e.ObjectRef.Resource == "leases" || e.ResponseStatus == nil || e.ResponseStatus.Code >= 300 ||
			e.RequestReceived.Before(from) || !e.RequestReceived.Before(to) {
			continue
		}
		accepted = append(accepted, e)
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("audit log: %v", err)
	}
	return events, accepted
}
