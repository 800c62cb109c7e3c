package evidence

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/retention"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// maxBackupRows bounds the rows of the stored-backups table; counts stay exact.
const maxBackupRows = 1000

// listing is what one schedule's storage holds of the tenant.
type listing struct {
	schedule v1alpha1.BackupSchedule
	location string
	// backups are the tenant's complete backups, newest first.
	backups []catalog.Backup
	// escrow are the IDs of the tenant data keys stored wrapped beside the backups.
	escrow []string
	err    error
	// store is the opened storage, nil when it could not be opened: the prune and restore
	// records are read from it too.
	store storage.Store
}

func (g *gatherer) loadPolicies(ctx context.Context) {
	if g.t == nil {
		return
	}
	if ref := g.t.Spec.BackupPolicyRef; ref != nil {
		p := &v1alpha1.BackupPolicy{}
		if err := g.src.Client.Get(ctx, client.ObjectKey{Name: ref.Name}, p); err != nil {
			g.backupPolicyErr = err
		} else {
			g.backupPolicy = p
		}
	}
	if ref := g.t.Spec.RetentionPolicyRef; ref != nil {
		p := &v1alpha1.RetentionPolicy{}
		if err := g.src.Client.Get(ctx, client.ObjectKey{Name: ref.Name}, p); err != nil {
			g.retentionPolicyErr = err
		} else {
			g.retentionPolicy = p
		}
	}
}

// trust is what the operator checks the policy's backup signatures against.
func trustOf(p *v1alpha1.BackupPolicy) catalog.Trust {
	var trust catalog.Trust
	var keys []string
	if s := p.Status.Signing; s != nil {
		keys = append(keys, s.PublicKey)
		keys = append(keys, s.PreviousPublicKeys...)
	}
	if s := p.Spec.Signing; s != nil {
		keys = append(keys, s.AdditionalPublicKeys...)
		trust.AllowUnsigned = s.AllowUnsigned
	}
	for _, k := range keys {
		if pub, err := catalog.ParsePublicKey(k); err == nil {
			trust.Keys = append(trust.Keys, pub)
		}
	}
	return trust
}

// listStorage lists every schedule's storage once, for the sections that read it.
func (g *gatherer) listStorage(ctx context.Context) {
	if g.t == nil || g.backupPolicy == nil || g.src.OpenStorage == nil {
		return
	}
	trust := trustOf(g.backupPolicy)
	uids := builders.TenantUIDs(g.t)
	for _, sched := range g.backupPolicy.Spec.Schedules {
		l := listing{schedule: sched}
		l.location, _ = builders.StorageLocation(sched.Storage)
		if sched.Storage.Volume != nil {
			l.location = "volume " + sched.Storage.Volume.ClaimName
		}
		store, err := g.src.OpenStorage(ctx, sched.Storage)
		if err == nil {
			l.store = store
			l.backups, err = catalog.List(ctx, store, g.t.Name, sched.Name, catalog.WithTenantUIDs(uids...), catalog.WithTrust(trust))
		}
		if err == nil {
			for _, uid := range uids {
				ids, kerr := catalog.ListDataKeys(ctx, store, g.t.Name, uid)
				if kerr != nil {
					err = kerr
					break
				}
				l.escrow = append(l.escrow, ids...)
			}
		}
		l.err = err
		g.listings = append(g.listings, l)
	}
}

// noPolicy handles the sections that need a BackupPolicy when there is none; it reports whether
// it set the verdict.
func (g *gatherer) noPolicy(s *Section, what string) bool {
	switch {
	case g.t.Spec.BackupPolicyRef == nil:
		s.set("backupPolicy", "Backup policy", "none")
		s.verdict(StatusNotMet, "No backup policy is set: the tenant is not backed up, so "+what+".")
		return true
	case g.backupPolicyErr != nil:
		s.set("backupPolicy", "Backup policy", g.t.Spec.BackupPolicyRef.Name)
		if apierrors.IsNotFound(g.backupPolicyErr) {
			s.verdict(StatusNotMet, fmt.Sprintf("The backup policy %s does not exist, so %s.", g.t.Spec.BackupPolicyRef.Name, what))
			return true
		}
		s.verdict(StatusUnknown, readError("The backup policy", g.backupPolicyErr))
		return true
	}
	s.set("backupPolicy", "Backup policy", g.backupPolicy.Name)
	s.proof(Source{Kind: "BackupPolicy", Name: g.backupPolicy.Name, Field: "spec"})
	return false
}

func (g *gatherer) scheduleStatus(name string) *v1alpha1.ScheduleBackupStatus {
	if g.t.Status.Backups == nil {
		return nil
	}
	for i := range g.t.Status.Backups.Schedules {
		if g.t.Status.Backups.Schedules[i].Name == name {
			return &g.t.Status.Backups.Schedules[i]
		}
	}
	return nil
}

func (g *gatherer) storageProof(s *Section, l listing) {
	s.proof(Source{Kind: "Storage", Location: l.location, Field: catalog.Dir(g.t.Name, l.schedule.Name, "")})
}

func methodOf(s v1alpha1.BackupSchedule) string {
	if s.IsPhysical() {
		return "physical (whole database files, with continuous change log)"
	}
	return "logical (database dump)"
}

// backups: per schedule, what the status says and what storage holds.
func (g *gatherer) backups(_ context.Context, s *Section) {
	if g.noPolicy(s, "no backup exists") {
		return
	}
	p := g.backupPolicy
	schedules := s.table("schedules", "Schedules agreed", col("schedule", "Schedule"), col("when", "When (cron)"),
		col("method", "Method"), col("storage", "Stored at"), col("maxAge", "Newest backup at most this old"))
	for _, sc := range p.Spec.Schedules {
		loc, _ := builders.StorageLocation(sc.Storage)
		if sc.Storage.Volume != nil {
			loc = "volume " + sc.Storage.Volume.ClaimName
		}
		maxAge := sc.MaxAge
		if maxAge == "" {
			maxAge = "schedule interval plus grace"
		}
		schedules.Rows = append(schedules.Rows, map[string]string{"schedule": sc.Name, "when": sc.Schedule, "method": methodOf(sc), "storage": loc, "maxAge": maxAge})
	}
	s.set("suspended", "Backups paused", yesNo(p.Spec.Suspend))

	c, cond := g.condition(v1alpha1.ConditionBackupsFresh)
	s.observe("backupsFresh", "Operator's check (BackupsFresh)", cond)
	if b := g.t.Status.Backups; b != nil {
		s.observe("lastSuccessTime", "Newest backup over all schedules", formatMetaTime(b.LastSuccessTime))
	}
	s.proof(g.tenantSource("status.backups"))
	s.proof(g.tenantSource("status.conditions[BackupsFresh]"))

	status := s.table("freshness", "Newest backup per schedule", col("schedule", "Schedule"), col("lastBackup", "Newest backup"),
		col("age", "Age"), col("allowedAge", "Allowed age"), col("fresh", "Recent enough"), col("count", "Backups stored"),
		col("lastBackupID", "Backup ID"), col("size", "Size"), col("source", "According to"))
	var stale, unknown []string
	listings := map[string]listing{}
	for _, l := range g.listings {
		listings[l.schedule.Name] = l
	}
	for _, sc := range p.Spec.Schedules {
		st := g.scheduleStatus(sc.Name)
		var allowed time.Duration
		if st != nil && st.ExpectedInterval != nil {
			allowed = st.ExpectedInterval.Duration
		}
		row := map[string]string{"schedule": sc.Name, "allowedAge": "not reported", "fresh": "unknown", "source": "Tenant status"}
		if allowed > 0 {
			row["allowedAge"] = formatAge(allowed)
		}
		var last time.Time
		if st != nil && st.LastSuccessTime != nil {
			last = st.LastSuccessTime.Time
			row["lastBackupID"], row["size"], row["count"] = st.LastBackupID, humanBytes(st.LastBackupSizeBytes), strconv.Itoa(int(st.Count))
		}
		if l, ok := listings[sc.Name]; ok && l.err == nil {
			// Storage is the proof: the newest backup whose signature the policy trusts.
			row["source"], row["count"], last = "storage listing", strconv.Itoa(len(l.backups)), time.Time{}
			row["lastBackupID"], row["size"] = "", ""
			for _, b := range l.backups {
				if b.Signature.Trusted() {
					last = b.FinishedAt
					row["lastBackupID"], row["size"] = b.ID, humanBytes(b.Object.Size)
					break
				}
			}
		}
		row["lastBackup"] = formatTime(last)
		switch {
		case last.IsZero():
			row["age"], row["fresh"] = "none", "no"
			stale = append(stale, "schedule "+sc.Name+" has no backup")
		case allowed == 0:
			row["age"] = formatAge(g.now.Sub(last))
			unknown = append(unknown, "schedule "+sc.Name+": the allowed age is not reported")
		default:
			age := g.now.Sub(last)
			row["age"], row["fresh"] = formatAge(age), yesNo(age <= allowed)
			if age > allowed {
				stale = append(stale, fmt.Sprintf("schedule %s: the newest backup is %s old, more than the %s allowed", sc.Name, formatAge(age), formatAge(allowed)))
			}
		}
		status.Rows = append(status.Rows, row)
	}

	stored := s.table("stored", "Backups found in storage", col("schedule", "Schedule"), col("id", "Backup ID"),
		col("method", "Method"), col("startedAt", "Taken"), col("age", "Age"), col("size", "Size"), col("sizeBytes", "Size in bytes"),
		col("sha256", "SHA-256 checksum"), col("verified", "Last check"), col("signature", "Signature"))
	storageRead, rows := false, 0
	for _, l := range g.listings {
		g.storageProof(s, l)
		if l.err != nil {
			s.observe("storage."+l.schedule.Name, "Storage of "+l.schedule.Name, readError("The storage "+l.location, l.err))
			continue
		}
		storageRead = true
		s.observe("storage."+l.schedule.Name, "Storage of "+l.schedule.Name, fmt.Sprintf("%s: %d backups", l.location, len(l.backups)))
		for _, b := range l.backups {
			if rows++; rows > maxBackupRows {
				continue
			}
			stored.Rows = append(stored.Rows, map[string]string{"schedule": b.Schedule, "id": b.ID, "method": b.MethodOf(),
				"startedAt": formatTime(b.StartedAt), "age": formatAge(g.now.Sub(b.StartedAt)), "size": humanBytes(b.Object.Size),
				"sizeBytes": strconv.FormatInt(b.Object.Size, 10), "sha256": b.Object.SHA256, "verified": verificationText(b.Verification),
				"signature": signatureText(b.Signature)})
		}
	}
	if rows > maxBackupRows {
		s.observe("storedRowsOmitted", "Backups not listed in the table", strconv.Itoa(rows-maxBackupRows))
	}
	if g.src.OpenStorage == nil {
		s.observe("storage", "Storage", "not read: the report rests on the Tenant's status")
	} else if !storageRead && len(g.listings) > 0 {
		unknown = append(unknown, "no storage location could be read")
	}
	switch {
	case len(stale) > 0:
		s.verdict(StatusNotMet, capitalize(strings.Join(stale, "; "))+".")
	case isFalse(c):
		s.verdict(StatusNotMet, "The operator reports the backups not fresh ("+c.Reason+"): "+c.Message)
	case len(unknown) > 0:
		s.verdict(StatusUnknown, capitalize(strings.Join(unknown, "; "))+".")
	case storageRead:
		s.verdict(StatusMet, "Every schedule's newest backup in storage is recent enough.")
	default:
		s.verdict(StatusMet, "Every schedule's newest backup is recent enough, as the Tenant's status reports (storage was not read).")
	}
}

func verificationText(v *catalog.Verification) string {
	if v == nil {
		return "never"
	}
	result := "passed"
	if !v.OK {
		result = "FAILED"
		if v.Reason != "" {
			result += " (" + v.Reason + ")"
		}
	}
	return fmt.Sprintf("%s %s %s", kindText(v.Kind), result, formatTime(v.CheckedAt))
}

func kindText(kind string) string {
	switch kind {
	case catalog.KindRestoreDrill:
		return "trial restore"
	case catalog.KindChecksum:
		return "checksum"
	}
	return kind
}

func signatureText(s catalog.SignatureStatus) string {
	switch s {
	case catalog.SignatureValid:
		return "valid"
	case catalog.SignatureUnsignedAccepted:
		return "unsigned, accepted by policy"
	case catalog.SignatureMissing:
		return "MISSING"
	case catalog.SignatureInvalid:
		return "INVALID"
	}
	return "not checked"
}

// encryption: who can decrypt, named by fingerprints.
func (g *gatherer) encryption(_ context.Context, s *Section) {
	if g.noPolicy(s, "nothing is encrypted") {
		return
	}
	_, fps, err := backup.ParseRecipients(g.backupPolicy.Spec.Encryption.Recipients)
	if err != nil {
		s.set("platformKeys", "Platform keys that can unwrap the tenant's key (fingerprints)", "invalid: "+err.Error())
	} else {
		s.set("platformKeys", "Platform keys that can unwrap the tenant's key (fingerprints)", strings.Join(fps, ", "))
	}
	s.set("method", "Encryption", "age (X25519), before the backup leaves the backup job")
	dk := g.t.Status.DataKey
	if dk != nil && dk.ID != "" {
		s.observe("dataKeyID", "The tenant's own key (fingerprint)", dk.ID)
		s.observe("dataKeyCreatedAt", "Key made", formatMetaTime(dk.CreatedAt))
	} else {
		s.observe("dataKeyID", "The tenant's own key (fingerprint)", "none reported")
	}
	s.proof(g.tenantSource("status.dataKey"))
	tbl := s.table("keys", "Backups by key", col("schedule", "Schedule"), col("encryption", "Encryption"), col("key", "Encrypted to"),
		col("backups", "Backups"), col("escrow", "Key copy stored beside the backups"))
	read, unencrypted, plain := false, 0, 0
	for _, l := range g.listings {
		g.storageProof(s, l)
		if l.err != nil {
			continue
		}
		read = true
		counts := map[[2]string]int{}
		for _, b := range l.backups {
			key := "platform keys directly (before per-tenant keys)"
			if b.DataKeyID != "" {
				key = "tenant key " + b.DataKeyID
			} else {
				plain++
			}
			if b.Object.Encryption != "age" {
				unencrypted++
			}
			counts[[2]string{b.Object.Encryption, key}]++
		}
		keys := make([][2]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][1] < keys[j][1] })
		for _, k := range keys {
			escrow := "not applicable"
			if id, ok := strings.CutPrefix(k[1], "tenant key "); ok {
				escrow = yesNo(slices.Contains(l.escrow, id))
			}
			tbl.Rows = append(tbl.Rows, map[string]string{"schedule": l.schedule.Name, "encryption": k[0], "key": k[1], "backups": strconv.Itoa(counts[k]), "escrow": escrow})
		}
	}
	switch {
	case !read:
		s.verdict(StatusUnknown, "The backups in storage were not read, so their encryption was not observed.")
	case unencrypted > 0:
		s.verdict(StatusNotMet, fmt.Sprintf("%d backups do not say they are encrypted with age.", unencrypted))
	case dk == nil || dk.ID == "":
		s.verdict(StatusNotMet, "Every backup is encrypted, but the tenant has no key of its own reported: erasing its key could not make its backups unreadable.")
	case plain > 0:
		s.verdict(StatusMet, fmt.Sprintf("Every backup is encrypted; %d older ones are encrypted to the platform's keys directly rather than to the tenant's own key.", plain))
	default:
		s.verdict(StatusMet, "Every backup in storage is encrypted to the tenant's own key; the report names keys by fingerprint only.")
	}
}

// verification: checksums and trial restores.
func (g *gatherer) verification(_ context.Context, s *Section) {
	if g.noPolicy(s, "nothing is checked") {
		return
	}
	v := g.backupPolicy.Spec.Verification
	if v != nil {
		s.set("schedule", "Checks run (cron)", v.Schedule)
	} else {
		s.set("schedule", "Checks run (cron)", "none")
	}
	c, cond := g.condition(v1alpha1.ConditionBackupVerified)
	s.observe("backupVerified", "Operator's check (BackupVerified)", cond)
	if b := g.t.Status.Backups; b != nil {
		s.observe("lastVerificationTime", "Newest passed check", formatMetaTime(b.LastVerificationTime))
	}
	s.proof(g.tenantSource("status.conditions[BackupVerified]"))
	s.proof(g.tenantSource("status.backups.lastVerificationTime"))
	tbl := s.table("checks", "Newest check per schedule", col("schedule", "Schedule"), col("backupID", "Backup checked"),
		col("kind", "Check"), col("result", "Result"), col("checkedAt", "When"))
	for _, l := range g.listings {
		if l.err != nil {
			continue
		}
		g.storageProof(s, l)
		var newest *catalog.Backup
		for i := range l.backups {
			b := &l.backups[i]
			if b.Verification != nil && (newest == nil || b.Verification.CheckedAt.After(newest.Verification.CheckedAt)) {
				newest = b
			}
		}
		if newest == nil {
			tbl.Rows = append(tbl.Rows, map[string]string{"schedule": l.schedule.Name, "backupID": "none", "kind": "", "result": "never checked", "checkedAt": "never"})
			continue
		}
		vr := newest.Verification
		result := "passed"
		if !vr.OK {
			result = "FAILED " + strings.Join(vr.Problems, "; ")
		}
		tbl.Rows = append(tbl.Rows, map[string]string{"schedule": l.schedule.Name, "backupID": newest.ID, "kind": kindText(vr.Kind), "result": result, "checkedAt": formatTime(vr.CheckedAt)})
	}
	switch {
	case v == nil:
		s.verdict(StatusNotMet, "The backup policy schedules no checks of the backups.")
	case isTrue(c):
		s.verdict(StatusMet, "The newest checks of the backups passed: "+c.Message)
	case isFalse(c):
		s.verdict(StatusNotMet, "The checks of the backups did not pass ("+c.Reason+"): "+c.Message)
	default:
		s.verdict(StatusUnknown, "The operator has not reported on the checks of the backups yet.")
	}
}

// retentionRules describes a RetentionPolicy in plain words.
func retentionRules(p v1alpha1.RetentionPolicySpec) []Fact {
	var out []Fact
	add := func(key, label string, n *int32) {
		if n != nil {
			out = append(out, Fact{Key: key, Label: label, Value: strconv.Itoa(int(*n))})
		}
	}
	add("keepLast", "Keep the newest backups", p.KeepLast)
	add("keepDaily", "Keep one backup a day for this many days", p.KeepDaily)
	add("keepWeekly", "Keep one backup a week for this many weeks", p.KeepWeekly)
	add("keepMonthly", "Keep one backup a month for this many months", p.KeepMonthly)
	add("keepYearly", "Keep one backup a year for this many years", p.KeepYearly)
	if p.MaxAge != "" {
		out = append(out, Fact{Key: "maxAge", Label: "Keep every backup younger than", Value: p.MaxAge})
	}
	add("minKeep", "Never fewer backups per schedule than", p.MinKeep)
	return out
}

// retention: the rules, what the operator will prune next and what it pruned.
func (g *gatherer) retention(ctx context.Context, s *Section) {
	ref := g.t.Spec.RetentionPolicyRef
	switch {
	case ref == nil:
		s.set("retentionPolicy", "Retention policy", "none")
		s.verdict(StatusNotMet, "No retention policy is set: backups are kept without limit.")
		return
	case g.retentionPolicyErr != nil:
		s.set("retentionPolicy", "Retention policy", ref.Name)
		if apierrors.IsNotFound(g.retentionPolicyErr) {
			s.verdict(StatusNotMet, fmt.Sprintf("The retention policy %s does not exist, so nothing is pruned.", ref.Name))
			return
		}
		s.verdict(StatusUnknown, readError("The retention policy", g.retentionPolicyErr))
		return
	}
	p := g.retentionPolicy
	s.set("retentionPolicy", "Retention policy", p.Name)
	s.Setting = append(s.Setting, retentionRules(p.Spec)...)
	s.set("recordsKept", "Each deletion is recorded in the backup storage, and the record kept",
		fmt.Sprintf("a year or the longest period above, whichever is longer, plus 31 days (a record made now: until %s)",
			catalog.RecordsKeptUntil(p.Spec, g.now).Format("2006-01-02")))
	s.proof(Source{Kind: "RetentionPolicy", Name: p.Name, Field: "spec"})
	c, cond := g.condition(v1alpha1.ConditionPoliciesResolved)
	s.observe("policiesResolved", "Operator's check (PoliciesResolved)", cond)
	s.proof(g.tenantSource("status.backups.schedules[].nextPrune"))
	next := s.table("nextPrune", "To be deleted at the next pruning (as the Tenant reports)", col("schedule", "Schedule"), col("count", "Backups kept"), col("nextPrune", "Next to be deleted"))
	if b := g.t.Status.Backups; b != nil {
		for _, sc := range b.Schedules {
			next.Rows = append(next.Rows, map[string]string{"schedule": sc.Name, "count": strconv.Itoa(int(sc.Count)), "nextPrune": orNone(sc.NextPrune)})
		}
	}
	// Why each stored backup is kept, by the same pure function the operator prunes with.
	loc := time.UTC
	if m := g.t.Spec.Monitoring; m != nil && m.BusinessHours != nil {
		if l, err := time.LoadLocation(m.BusinessHours.TimeZone); err == nil {
			loc = l
		}
	}
	kept := s.table("decisions", "Why each stored backup is kept", col("schedule", "Schedule"), col("id", "Backup ID"), col("decision", "Decision"), col("reasons", "Reasons"))
	var dueNow int
	for _, l := range g.listings {
		if l.err != nil {
			continue
		}
		var cands []retention.Candidate
		for _, b := range l.backups {
			if !b.Signature.Trusted() {
				continue
			}
			cand := retention.Candidate{ID: b.ID, Time: b.StartedAt, Verified: b.Verification != nil && b.Verification.OK}
			if b.Physical != nil {
				cand.Needs = b.Physical.Parent
			}
			cands = append(cands, cand)
		}
		d, err := retention.Decide(p.Spec, cands, g.now, loc)
		if err != nil {
			s.observe("decision."+l.schedule.Name, "Retention decision for "+l.schedule.Name, "could not be made: "+err.Error())
			continue
		}
		for _, k := range d.Keep {
			kept.Rows = append(kept.Rows, map[string]string{"schedule": l.schedule.Name, "id": k.ID, "decision": "keep", "reasons": strings.Join(k.Reasons, ", ")})
		}
		for _, pr := range d.Prune {
			kept.Rows = append(kept.Rows, map[string]string{"schedule": l.schedule.Name, "id": pr.ID, "decision": "delete at the next pruning",
				"reasons": "no rule keeps it: " + strings.Join(d.Why[pr.ID], "; ")})
		}
		dueNow += len(d.Prune)
	}
	// What was deleted: the records in storage are the account; the events, kept by the
	// cluster about an hour, add the last hour when storage was not read.
	g.pruneRecords(ctx, s)
	g.prunedEvents(ctx, s)
	switch {
	case isFalse(c):
		s.verdict(StatusNotMet, "The operator cannot apply the policies ("+c.Reason+"): "+c.Message)
	case dueNow > 0:
		s.verdict(StatusMet, fmt.Sprintf("The policy %s applies; %d stored backups are past it and are deleted at the operator's next pruning (every few minutes).", p.Name, dueNow))
	default:
		s.verdict(StatusMet, fmt.Sprintf("The policy %s applies, and no stored backup is kept beyond it.", p.Name))
	}
}

// prunedEvents lists the operator's BackupsPruned events for the tenant. Events expire (an hour
// by default), so this is the recent past only.
func (g *gatherer) prunedEvents(ctx context.Context, s *Section) {
	events := &corev1.EventList{}
	err := g.src.Client.List(ctx, events, client.MatchingFields{"involvedObject.kind": "Tenant", "involvedObject.name": g.t.Name, "reason": "BackupsPruned"})
	if err != nil {
		s.observe("pruned", "Deletions recorded", readError("The operator's events", err))
		return
	}
	s.proof(Source{Kind: "Event", Field: "reason=BackupsPruned"})
	tbl := s.table("pruned", "Deletions announced in the cluster's events (about the last hour only; the records in the backup storage are the lasting account)", col("time", "When"), col("message", "What"))
	sort.Slice(events.Items, func(i, j int) bool { return eventTime(events.Items[i]).Before(eventTime(events.Items[j])) })
	for _, e := range events.Items {
		tbl.Rows = append(tbl.Rows, map[string]string{"time": formatTime(eventTime(e)), "message": e.Message})
	}
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// regions: every S3 schedule's region against allowedRegions.
func (g *gatherer) regions(_ context.Context, s *Section) {
	if g.noPolicy(s, "no data is stored") {
		return
	}
	allowed := g.backupPolicy.Spec.AllowedRegions
	s.set("allowedRegions", "Agreed regions", orNone(allowed))
	tbl := s.table("locations", "Where backups are stored", col("schedule", "Schedule"), col("storage", "Storage"),
		col("region", "Region"), col("allowed", "In an agreed region"))
	var outside, unchecked []string
	for _, sc := range g.backupPolicy.Spec.Schedules {
		switch {
		case sc.Storage.S3 != nil:
			region := sc.Storage.S3.Region
			if region == "" {
				region = "us-east-1 (none set; the default)"
			}
			in := slices.Contains(allowed, sc.Storage.S3.Region)
			tbl.Rows = append(tbl.Rows, map[string]string{"schedule": sc.Name, "storage": "bucket " + sc.Storage.S3.Bucket + " at " + sc.Storage.S3.Endpoint, "region": region, "allowed": yesNo(in)})
			if !in {
				outside = append(outside, fmt.Sprintf("%s stores in %s", sc.Name, region))
			}
		default:
			tbl.Rows = append(tbl.Rows, map[string]string{"schedule": sc.Name, "storage": "a volume in the cluster", "region": "the cluster's", "allowed": "not checked"})
			unchecked = append(unchecked, sc.Name)
		}
	}
	s.proof(Source{Kind: "BackupPolicy", Name: g.backupPolicy.Name, Field: "spec.allowedRegions, spec.schedules[].storage"})
	switch {
	case len(allowed) == 0:
		s.verdict(StatusUnknown, "The backup policy names no agreed regions, so any region is allowed.")
	case len(outside) > 0:
		s.verdict(StatusNotMet, capitalize(strings.Join(outside, "; "))+", outside the agreed regions.")
	case len(unchecked) > 0:
		s.verdict(StatusUnknown, "Schedules "+strings.Join(unchecked, ", ")+" store on a volume in the cluster, whose region is not checked.")
	default:
		s.verdict(StatusMet, "Every schedule stores its backups in an agreed region.")
	}
}

// pointInTime: the recovery window of physical schedules.
func (g *gatherer) pointInTime(_ context.Context, s *Section) {
	if g.noPolicy(s, "there is nothing to restore") {
		return
	}
	var physical []string
	for _, sc := range g.backupPolicy.Spec.Schedules {
		if sc.IsPhysical() {
			physical = append(physical, sc.Name)
		}
	}
	s.set("physicalSchedules", "Schedules with a continuous change log", orNone(physical))
	c, cond := g.condition(v1alpha1.ConditionWALArchiving)
	s.observe("walArchiving", "Operator's check (WALArchiving)", cond)
	s.proof(g.tenantSource("status.backups.schedules[].pointInTime"))
	s.proof(g.tenantSource("status.conditions[WALArchiving]"))
	if len(physical) == 0 {
		s.verdict(StatusNotMet, "No schedule keeps a continuous change log: the database can be restored to the moment of a backup only.")
		return
	}
	tbl := s.table("windows", "Recovery window per schedule", col("schedule", "Schedule"), col("earliest", "Earliest moment"),
		col("latest", "Latest moment"), col("baseBackups", "Full copies in the window"), col("lastArchived", "Last change log stored"))
	var missing []string
	for _, name := range physical {
		st := g.scheduleStatus(name)
		if st == nil || st.PointInTime == nil || st.PointInTime.EarliestTime == nil || st.PointInTime.LatestTime == nil {
			missing = append(missing, name)
			tbl.Rows = append(tbl.Rows, map[string]string{"schedule": name, "earliest": "not reported", "latest": "not reported", "baseBackups": "0", "lastArchived": "not reported"})
			continue
		}
		pit := st.PointInTime
		tbl.Rows = append(tbl.Rows, map[string]string{"schedule": name, "earliest": formatMetaTime(pit.EarliestTime), "latest": formatMetaTime(pit.LatestTime),
			"baseBackups": strconv.Itoa(int(pit.BaseBackups)), "lastArchived": formatMetaTime(pit.LastArchivedTime)})
	}
	switch {
	case isFalse(c):
		s.verdict(StatusNotMet, "The change log is not being stored ("+c.Reason+"): "+c.Message)
	case len(missing) > 0:
		s.verdict(StatusUnknown, "No recovery window is reported yet for "+strings.Join(missing, ", ")+".")
	default:
		s.verdict(StatusMet, "The database can be restored to any moment within the windows shown.")
	}
}
