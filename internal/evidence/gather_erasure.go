package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// uptime: the measured availability against the objective.
func (g *gatherer) uptime(_ context.Context, s *Section) {
	m := g.t.Spec.Monitoring
	objective := uptime.DefaultObjective
	hours := "around the clock"
	url := "https://" + firstOr(g.t.Spec.Hostnames, "") + "/"
	if m != nil {
		if m.Objective != "" {
			objective = m.Objective
		}
		if b := m.BusinessHours; b != nil {
			hours = fmt.Sprintf("%s %s to %s (%s)", strings.Join(b.Days, ", "), b.Start, b.End, b.TimeZone)
		}
		if m.URL != "" {
			url = m.URL
		}
	}
	s.set("objective", "Agreed availability (percent)", objective)
	s.set("hours", "Measured during", hours)
	s.set("url", "Address probed", url)
	s.proof(g.tenantSource("spec.monitoring"))
	c, cond := g.condition(v1alpha1.ConditionUptimeObjectiveMet)
	s.observe("uptimeObjectiveMet", "Operator's check (UptimeObjectiveMet)", cond)
	_, avail := g.condition(v1alpha1.ConditionAvailable)
	s.observe("available", "Answering now (Available)", avail)
	s.proof(g.tenantSource("status.uptime"))
	s.proof(g.tenantSource("status.conditions[UptimeObjectiveMet]"))
	tbl := s.table("windows", "Measured availability", col("window", "Period"), col("measured", "Measured (percent)"), col("objective", "Agreed (percent)"))
	if u := g.t.Status.Uptime; u != nil {
		for _, w := range []struct{ name, v string }{{"last 24 hours", u.Ratio24h}, {"last 7 days", u.Ratio7d}, {"last 30 days", u.Ratio30d}} {
			tbl.Rows = append(tbl.Rows, map[string]string{"window": w.name, "measured": orNotMeasured(w.v), "objective": objective})
		}
		s.observe("errorBudgetRemaining", "Share of the allowed downtime left (30 days, percent)", orNotMeasured(u.ErrorBudgetRemaining))
		if u.DownSince != nil {
			s.observe("downSince", "Down since", formatMetaTime(u.DownSince))
		}
		if u.DetectionSeconds > 0 {
			s.observe("detectionSeconds", "Longest time from an outage to the alert (seconds)", strconv.Itoa(int(u.DetectionSeconds)))
		}
	}
	switch {
	case isTrue(c):
		s.verdict(StatusMet, "The measured availability meets the agreed "+objective+" %: "+c.Message)
	case isFalse(c) && c.Reason == v1alpha1.ReasonObjectiveMissed:
		s.verdict(StatusNotMet, "The measured availability is below the agreed "+objective+" %: "+c.Message)
	case c != nil:
		s.verdict(StatusUnknown, "Availability is not measured against the objective ("+c.Reason+"): "+c.Message)
	default:
		s.verdict(StatusUnknown, "The operator has not reported availability yet.")
	}
}

func firstOr(values []string, fallback string) string {
	if len(values) == 0 {
		return fallback
	}
	return values[0]
}

func orNotMeasured(v string) string {
	if v == "" {
		return "not measured"
	}
	return v
}

// SubjectFingerprint names a data subject without spelling it out: the first 16 hex digits of
// SHA-256 of the subject's id. Whoever knows the id can match it; the report does not reveal it.
func SubjectFingerprint(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// erasureRequests: the ErasureRequests in the tenant's namespace and what became of them.
func (g *gatherer) erasureRequests(ctx context.Context, s *Section) {
	ns := g.namespace()
	s.set("how", "How a request is made", "an ErasureRequest in the namespace "+ns+", naming the person (subject) and the application's erasure function")
	list := &v1alpha1.ErasureRequestList{}
	if err := g.src.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		s.verdict(StatusUnknown, readError("The erasure requests", err))
		return
	}
	s.proof(Source{Kind: "ErasureRequest", Namespace: ns, Field: "spec, status"})
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	tbl := s.table("requests", "Erasure requests", col("name", "Request"), col("createdAt", "Made"), col("subject", "Person (fingerprint)"),
		col("function", "Erasure function"), col("phase", "State"), col("completedAt", "Carried out"), col("ledgerEntry", "Recorded for replay after restores"),
		col("replays", "Replayed by restores"))
	// The restores of the tenant's backups, with what each replayed of the ledger; the
	// requests' rows say how often each was replayed.
	restores, failed := g.restoreRecords(ctx, s)
	names := map[string]string{}
	for _, r := range list.Items {
		names[string(r.UID)] = r.Name
	}
	replays := map[string]int{}
	restored := s.table("restores", "Restores and the erasure requests each replayed before it committed", col("restoredAt", "Restored"),
		col("restored", "What was restored"), col("database", "Into database"), col("replayed", "Requests replayed"),
		col("requests", "Which requests"), col("ledger", "Erasure ledger"), col("storage", "Record in"))
	var notReplayed []restoreRecord
	for _, r := range restores {
		which := make([]string, len(r.LedgerReplayed))
		for i, uid := range r.LedgerReplayed {
			replays[uid]++
			which[i] = uid
			if name, ok := names[uid]; ok {
				which[i] = name + " (" + uid + ")"
			}
		}
		database := r.Database
		if r.DataDirectory {
			database += " (in a new data directory)"
		}
		if r.LedgerNotReplayed != "" {
			notReplayed = append(notReplayed, r)
		}
		restored.Rows = append(restored.Rows, map[string]string{"restoredAt": formatTime(r.RestoredAt), "restored": restoredWhat(r.RestoreRecord),
			"database": database, "replayed": strconv.Itoa(len(r.LedgerReplayed)), "requests": orNone(which), "ledger": ledgerText(r.RestoreRecord),
			"storage": r.location})
	}
	switch {
	case g.src.OpenStorage == nil:
		s.observe("restores", "Restores recorded in the backup storage", "not read: the backup storage was not read")
	default:
		s.observe("restores", "Restores recorded in the backup storage", strconv.Itoa(len(restores)))
		s.observe("restoresWithoutReplay", "Restores that did not replay the erasure ledger", strconv.Itoa(len(notReplayed)))
	}
	for i, f := range failed {
		s.observe("restoreRecordsError."+strconv.Itoa(i), "Restore records", f)
	}

	counts := map[string]int{}
	for _, r := range list.Items {
		phase := r.Status.Phase
		if phase == "" {
			phase = v1alpha1.ErasurePhasePending
		}
		counts[phase]++
		ledger := "no"
		if r.Status.LedgerEntry != "" {
			ledger = "yes: " + r.Status.LedgerEntry
		}
		tbl.Rows = append(tbl.Rows, map[string]string{"name": r.Name, "createdAt": formatTime(r.CreationTimestamp.Time), "subject": SubjectFingerprint(r.Spec.Subject),
			"function": r.Spec.Function, "phase": phase, "completedAt": formatMetaTime(r.Status.CompletionTime), "ledgerEntry": ledger,
			"replays": strconv.Itoa(replays[string(r.UID)])})
	}
	s.observe("requests", "Requests", strconv.Itoa(len(list.Items)))
	for _, phase := range []string{v1alpha1.ErasurePhaseSucceeded, v1alpha1.ErasurePhaseFailed, v1alpha1.ErasurePhasePending, v1alpha1.ErasurePhaseRunning} {
		s.observe(strings.ToLower(phase), "Requests "+strings.ToLower(phase), strconv.Itoa(counts[phase]))
	}
	unread := ""
	if g.src.OpenStorage == nil {
		unread = " The restores recorded in the backup storage were not read."
	}
	switch open := counts[v1alpha1.ErasurePhasePending] + counts[v1alpha1.ErasurePhaseRunning]; {
	case counts[v1alpha1.ErasurePhaseFailed] > 0:
		s.verdict(StatusNotMet, fmt.Sprintf("%d erasure requests failed.", counts[v1alpha1.ErasurePhaseFailed]))
	case len(notReplayed) > 0:
		r := notReplayed[0]
		s.verdict(StatusNotMet, fmt.Sprintf("%d restores did not replay the erasure ledger, the newest on %s into database %s (%s): data erased on request before it may be back in what it restored.",
			len(notReplayed), formatTime(r.RestoredAt), r.Database, ledgerText(r.RestoreRecord)))
	case len(failed) > 0:
		s.verdict(StatusUnknown, "The record of the restores could not be read: "+strings.Join(failed, "; "))
	case open > 0:
		s.verdict(StatusUnknown, fmt.Sprintf("%d erasure requests are not carried out yet.", open))
	case len(list.Items) == 0:
		s.verdict(StatusMet, "No erasure request has been made."+unread)
	case len(restores) > 0:
		s.verdict(StatusMet, fmt.Sprintf("Every one of the %d erasure requests was carried out and recorded, so a restore replays it; none of the %d restores recorded went without replaying the ledger.", len(list.Items), len(restores)))
	default:
		s.verdict(StatusMet, fmt.Sprintf("Every one of the %d erasure requests was carried out and recorded, so a restore replays it.", len(list.Items))+unread)
	}
}

// erasureRecords: the records an erasure or a deletion with Retain left in the operator's
// namespace, for this Tenant's name.
func (g *gatherer) erasureRecords(ctx context.Context, s *Section) {
	if g.t != nil {
		s.set("deletionPolicy", "At contract end", deletionText(effectiveDeletion(g.t)))
		s.set("allowDelete", "Erasure confirmed (allow-delete annotation)", yesNo(g.t.Annotations[v1alpha1.AnnotationAllowDelete] == "true"))
		s.proof(g.tenantSource("spec.deletionPolicy"))
	}
	if g.src.OperatorNamespace == "" {
		s.verdict(StatusUnknown, "The operator's namespace was not given, so its erasure records were not read.")
		return
	}
	list := &corev1.ConfigMapList{}
	if err := g.src.Client.List(ctx, list, client.InNamespace(g.src.OperatorNamespace), client.MatchingLabels{builders.LabelTenant: g.name}); err != nil {
		s.verdict(StatusUnknown, readError("The erasure records", err))
		return
	}
	s.proof(Source{Kind: "ConfigMap", Namespace: g.src.OperatorNamespace, Field: "labels " + builders.LabelTenant + "=" + g.name})
	erased := s.table("erasures", "Erasures recorded", col("record", "Record"), col("tenantUID", "Customer's unique ID"), col("reason", "Why"),
		col("erasedAt", "When"), col("dataKeys", "Keys destroyed (fingerprints)"), col("unreadable", "Backups made unreadable"),
		col("deleted", "Backups deleted"), col("locations", "Where"))
	kept := s.table("kept", "Data kept after a deletion (Retain)", col("record", "Record"), col("tenantUID", "Customer's unique ID"),
		col("deletedAt", "Deleted"), col("backupPolicy", "Backup policy"), col("retentionPolicy", "Retention policy"))
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var bad []string
	erasedUIDs := map[string]bool{}
	for _, cm := range list.Items {
		switch cm.Labels[builders.LabelComponent] {
		case builders.ComponentErasureRecord:
			var r builders.ErasureRecord
			if err := json.Unmarshal([]byte(cm.Data[builders.ErasureRecordKey]), &r); err != nil {
				bad = append(bad, cm.Name)
				continue
			}
			var unreadable, deleted int
			var locations []string
			for _, l := range r.Locations {
				unreadable += l.BackupsUnreadableCount
				deleted += l.BackupsDeletedCount
				locations = append(locations, l.Location)
			}
			for _, uid := range r.TenantUIDs {
				erasedUIDs[uid] = true
			}
			erased.Rows = append(erased.Rows, map[string]string{"record": cm.Name, "tenantUID": strings.Join(r.TenantUIDs, ", "), "reason": r.Reason,
				"erasedAt": formatTime(r.ErasedAt), "dataKeys": orNone(r.DataKeys), "unreadable": strconv.Itoa(unreadable),
				"deleted": strconv.Itoa(deleted), "locations": orNone(locations)})
		case builders.ComponentKeptTenant:
			k, err := builders.KeptTenantOf(&cm)
			if err != nil {
				bad = append(bad, cm.Name)
				continue
			}
			kept.Rows = append(kept.Rows, map[string]string{"record": cm.Name, "tenantUID": strings.Join(k.TenantUIDs, ", "), "deletedAt": formatTime(k.DeletedAt),
				"backupPolicy": k.BackupPolicy, "retentionPolicy": k.RetentionPolicy})
		}
	}
	s.observe("erasures", "Erasures recorded", strconv.Itoa(len(erased.Rows)))
	s.observe("kept", "Deleted customers whose data is kept", strconv.Itoa(len(kept.Rows)))
	switch {
	case len(bad) > 0:
		s.verdict(StatusUnknown, "These records could not be read: "+strings.Join(bad, ", ")+".")
	case g.t != nil && erasedUIDs[string(g.t.UID)]:
		s.verdict(StatusMet, "This customer's erasure is recorded; its Tenant is still being removed.")
	case g.t != nil:
		s.verdict(StatusMet, fmt.Sprintf("The customer exists; at contract end its data is %s. %d earlier customers of this name are recorded.",
			strings.TrimPrefix(deletionText(effectiveDeletion(g.t)), "the data is "), len(erased.Rows)+len(kept.Rows)))
	case len(erased.Rows) > 0:
		s.verdict(StatusMet, "The erasure of the customer's data is recorded: its keys were destroyed, so no copy of its backups can be read.")
	case len(kept.Rows) > 0:
		s.verdict(StatusUnknown, "The customer was deleted and its data is kept under its retention policy, to be erased when that ends; no erasure is recorded yet.")
	default:
		s.verdict(StatusUnknown, "No Tenant and no record of this name were found.")
	}
}

// effectiveDeletion is what deleting the Tenant does now: Delete only when confirmed by the
// allow-delete annotation, as the operator decides (status.deletionPolicy says the same).
func effectiveDeletion(t *v1alpha1.Tenant) v1alpha1.DeletionPolicy {
	if t.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete && t.Annotations[v1alpha1.AnnotationAllowDelete] == "true" {
		return v1alpha1.DeletionPolicyDelete
	}
	return v1alpha1.DeletionPolicyRetain
}

func deletionText(p v1alpha1.DeletionPolicy) string {
	if p == v1alpha1.DeletionPolicyDelete {
		return "the data is erased: keys destroyed, backups deleted, the erasure recorded"
	}
	return "the data is kept, then erased once the retention policy's longest period has passed"
}
