package retention_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/retention"
	"github.com/tenantops/tenant-operator/internal/schedule"
)

// reference is a deliberately naive retention, written from the package doc without looking at
// Decide's code: every rule groups all backups into labelled periods with a map, sorts the labels
// and takes the newest N. It shares nothing with Decide but the time package and period parsing.
func reference(t testing.TB, p v1alpha1.RetentionPolicySpec, backups []retention.Candidate, now time.Time, loc *time.Location) map[string]bool {
	t.Helper()
	if loc == nil {
		loc = time.UTC
	}
	newer := func(a, b retention.Candidate) bool { // a is newer than b, as catalog.List orders them
		if !a.Time.Equal(b.Time) {
			return a.Time.After(b.Time)
		}
		return a.ID > b.ID
	}
	sorted := slices.Clone(backups)
	sort.Slice(sorted, func(i, j int) bool { return newer(sorted[i], sorted[j]) })

	keep := map[string]bool{}
	if len(sorted) > 0 {
		keep[sorted[0].ID] = true
	}
	var newestVerified *retention.Candidate
	for i, b := range backups {
		if b.Verified && (newestVerified == nil || newer(b, *newestVerified)) {
			newestVerified = &backups[i]
		}
	}
	if newestVerified != nil {
		keep[newestVerified.ID] = true
	}
	if p.KeepLast != nil {
		for i := 0; i < int(*p.KeepLast) && i < len(sorted); i++ {
			keep[sorted[i].ID] = true
		}
	}
	labels := []struct {
		n     *int32
		label func(time.Time) string
	}{
		{p.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.KeepWeekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
		{p.KeepYearly, func(t time.Time) string { return t.Format("2006") }},
	}
	for _, rule := range labels {
		if rule.n == nil {
			continue
		}
		newestIn := map[string]retention.Candidate{}
		for _, b := range backups {
			l := rule.label(b.Time.In(loc))
			if cur, ok := newestIn[l]; !ok || newer(b, cur) {
				newestIn[l] = b
			}
		}
		var names []string
		for l := range newestIn {
			names = append(names, l)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(names)))
		for i := 0; i < int(*rule.n) && i < len(names); i++ {
			keep[newestIn[names[i]].ID] = true
		}
	}
	if p.MaxAge != "" {
		period, err := schedule.ParsePeriod(p.MaxAge)
		if err != nil {
			t.Fatal(err)
		}
		cutoff := now.In(loc).AddDate(-period.Years, -period.Months, -period.Days).Add(-period.Exact)
		for _, b := range backups {
			if b.Time.After(cutoff) {
				keep[b.ID] = true
			}
		}
	}
	minKeep := 1
	if p.MinKeep != nil {
		minKeep = int(*p.MinKeep)
	}
	for _, b := range sorted {
		if len(keep) >= minKeep {
			break
		}
		keep[b.ID] = true
	}
	return keep
}

// twoYears returns 400 backups spread over two years: a nominal one every 43.8 hours, each moved
// by up to half a day either way, so that some days hold two and many none; one in eight is
// verified. The seed makes it the same every run.
func twoYears(seed uint64) ([]retention.Candidate, time.Time) {
	rng := rand.New(rand.NewPCG(seed, 400))
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	step := 2 * 365 * 24 * time.Hour / 400
	var out []retention.Candidate
	for i := range 400 {
		jitter := time.Duration(rng.Int64N(int64(24*time.Hour))) - 12*time.Hour
		t := start.Add(time.Duration(i)*step + jitter).Truncate(time.Second)
		out = append(out, retention.Candidate{ID: fmt.Sprintf("%s-%03d", t.Format("20060102T150405Z"), i), Time: t, Verified: rng.IntN(8) == 0})
	}
	return out, start.Add(2 * 365 * 24 * time.Hour)
}

func locations(t testing.TB) []*time.Location {
	var out []*time.Location
	for _, name := range []string{"UTC", "Europe/Amsterdam", "America/St_Johns", "Pacific/Chatham"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		out = append(out, loc)
	}
	return out
}

// TestDecideTwoYears is the property test: 400 backups over two years in, exactly the
// survivors the naive reference names out, for several policies and time zones.
func TestDecideTwoYears(t *testing.T) {
	backups, now := twoYears(1)
	policies := map[string]v1alpha1.RetentionPolicySpec{
		"5 days, 2 months, 1 year": {KeepDaily: ptr.To[int32](5), KeepMonthly: ptr.To[int32](2), KeepYearly: ptr.To[int32](1)},
		"the sample policy": {KeepLast: ptr.To[int32](10), KeepDaily: ptr.To[int32](60), KeepMonthly: ptr.To[int32](12),
			MaxAge: "5d", MinKeep: ptr.To[int32](2)},
		"weekly and yearly":   {KeepWeekly: ptr.To[int32](8), KeepYearly: ptr.To[int32](3)},
		"every period":        {KeepDaily: ptr.To[int32](30), KeepWeekly: ptr.To[int32](12), KeepMonthly: ptr.To[int32](24), KeepYearly: ptr.To[int32](10)},
		"maxAge alone":        {MaxAge: "90d"},
		"maxAge and minKeep":  {MaxAge: "1y6mo", MinKeep: ptr.To[int32](3)},
		"minKeep alone":       {KeepLast: ptr.To[int32](0), MinKeep: ptr.To[int32](5)},
		"keepLast everything": {KeepLast: ptr.To[int32](400)},
	}
	for name, policy := range policies {
		for _, loc := range locations(t) {
			t.Run(name+" in "+loc.String(), func(t *testing.T) {
				d, err := retention.Decide(policy, backups, now, loc)
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				checkAgainstReference(t, policy, backups, now, loc, d)
				checkInvariants(t, policy, backups, now, loc, d)
			})
		}
	}

	// The vendors' policy, spelled out: five days, the two months and the year each give their
	// newest backup; the newest backup is one of them; the newest verified backup stays.
	d, err := retention.Decide(policies["5 days, 2 months, 1 year"], backups, now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, k := range d.Keep {
		for _, why := range k.Reasons {
			counts[strings.Fields(why)[0]]++
		}
	}
	// "newest" and "newest verified" share their first word.
	want := map[string]int{"newest": 2, "daily": 5, "monthly": 2, "yearly": 1}
	if !mapsEqual(counts, want) {
		t.Errorf("reasons counted by rule %v, want %v", counts, want)
	}
	if len(d.Keep) < 6 || len(d.Keep) > 9 || len(d.Keep)+len(d.Prune) != 400 {
		t.Errorf("kept %d and pruned %d of 400; want 6 to 9 kept", len(d.Keep), len(d.Prune))
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDecideInvariants checks what must hold for any policy and any backups, on seeded random
// inputs: small sets so that ties, duplicates in one period, future times and minKeep above the
// count all come up often.
func TestDecideInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 5))
	locs := locations(t)
	maxAges := []string{"", "", "36h", "5d", "2w", "1mo", "3mo", "1y"}
	count := func() *int32 {
		if rng.IntN(2) == 0 {
			return nil
		}
		return ptr.To(int32(rng.IntN(8)))
	}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	const span = 3 * 365 * 24 * time.Hour
	for i := range 3000 {
		policy := v1alpha1.RetentionPolicySpec{
			KeepLast: count(), KeepDaily: count(), KeepWeekly: count(), KeepMonthly: count(), KeepYearly: count(),
			MaxAge: maxAges[rng.IntN(len(maxAges))],
		}
		if rng.IntN(2) == 0 {
			policy.MinKeep = ptr.To(int32(1 + rng.IntN(6)))
		}
		if policy == (v1alpha1.RetentionPolicySpec{MinKeep: policy.MinKeep}) {
			policy.KeepLast = ptr.To[int32](1)
		}
		n := rng.IntN(60)
		// Backups crowd into a random window so that periods hold several, sometimes none.
		window := time.Duration(1 + rng.Int64N(int64(span)))
		var backups []retention.Candidate
		for j := range n {
			var when time.Time
			if j > 0 && rng.IntN(10) == 0 {
				when = backups[rng.IntN(j)].Time // the same instant as another backup
			} else {
				when = base.Add(time.Duration(rng.Int64N(int64(window)))).Truncate(time.Minute)
			}
			backups = append(backups, retention.Candidate{ID: fmt.Sprintf("b%02d", j), Time: when, Verified: rng.IntN(5) == 0})
		}
		now := base.Add(time.Duration(rng.Int64N(int64(span)))) // sometimes before some backups
		loc := locs[rng.IntN(len(locs))]
		name := fmt.Sprintf("case %d: %s, %d backups, now %s in %s", i, describe(policy), n, now.Format(time.RFC3339), loc)
		d, err := retention.Decide(policy, backups, now, loc)
		if err != nil {
			t.Fatalf("%s: Decide: %v", name, err)
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Log(name)
			checkAgainstReference(t, policy, backups, now, loc, d)
			checkInvariants(t, policy, backups, now, loc, d)
		})
		if t.Failed() {
			break
		}
	}
}

func describe(p v1alpha1.RetentionPolicySpec) string {
	var parts []string
	for _, f := range []struct {
		name string
		v    *int32
	}{{"last", p.KeepLast}, {"daily", p.KeepDaily}, {"weekly", p.KeepWeekly}, {"monthly", p.KeepMonthly}, {"yearly", p.KeepYearly}, {"minKeep", p.MinKeep}} {
		if f.v != nil {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, *f.v))
		}
	}
	if p.MaxAge != "" {
		parts = append(parts, "maxAge="+p.MaxAge)
	}
	return strings.Join(parts, " ")
}

func checkAgainstReference(t *testing.T, policy v1alpha1.RetentionPolicySpec, backups []retention.Candidate, now time.Time, loc *time.Location, d retention.Decision) {
	t.Helper()
	want := reference(t, policy, backups, now, loc)
	got := map[string]bool{}
	for _, k := range d.Keep {
		got[k.ID] = true
	}
	var missing, extra []string
	for id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra) > 0 {
		sort.Strings(missing)
		sort.Strings(extra)
		t.Errorf("survivors differ from the reference: pruned but should stay %v; kept but should go %v", missing, extra)
	}
}

func checkInvariants(t *testing.T, policy v1alpha1.RetentionPolicySpec, backups []retention.Candidate, now time.Time, loc *time.Location, d retention.Decision) {
	t.Helper()
	// Keep and Prune partition the input.
	seen := map[string]int{}
	for _, k := range d.Keep {
		seen[k.ID]++
		if len(k.Reasons) == 0 {
			t.Errorf("%s kept without a reason", k.ID)
		}
	}
	for _, p := range d.Prune {
		seen[p.ID]++
		if len(d.Why[p.ID]) == 0 {
			t.Errorf("%s pruned without a reason", p.ID)
		}
	}
	if len(d.Why) != len(d.Prune) {
		t.Errorf("reasons for %d backups, %d pruned", len(d.Why), len(d.Prune))
	}
	for _, b := range backups {
		if seen[b.ID] != 1 {
			t.Errorf("%s appears %d times in Keep and Prune, want once", b.ID, seen[b.ID])
		}
	}
	if len(d.Keep)+len(d.Prune) != len(backups) {
		t.Errorf("kept %d + pruned %d != %d backups", len(d.Keep), len(d.Prune), len(backups))
	}
	// Orders: Keep newest first, Prune oldest first.
	for i := 1; i < len(d.Keep); i++ {
		if d.Keep[i].Time.After(d.Keep[i-1].Time) {
			t.Errorf("Keep is not newest first at %d", i)
		}
	}
	for i := 1; i < len(d.Prune); i++ {
		if d.Prune[i].Time.Before(d.Prune[i-1].Time) {
			t.Errorf("Prune is not oldest first at %d", i)
		}
	}
	// minKeep is a floor.
	minKeep := 1
	if policy.MinKeep != nil {
		minKeep = int(*policy.MinKeep)
	}
	if want := min(minKeep, len(backups)); len(d.Keep) < want {
		t.Errorf("kept %d, fewer than min(minKeep, n) = %d", len(d.Keep), want)
	}
	// The newest and the newest verified backup survive.
	var newest, newestVerified *retention.Candidate
	for i, b := range backups {
		if newest == nil || b.Time.After(newest.Time) || b.Time.Equal(newest.Time) && b.ID > newest.ID {
			newest = &backups[i]
		}
		if b.Verified && (newestVerified == nil || b.Time.After(newestVerified.Time) || b.Time.Equal(newestVerified.Time) && b.ID > newestVerified.ID) {
			newestVerified = &backups[i]
		}
	}
	for _, protected := range []*retention.Candidate{newest, newestVerified} {
		if protected != nil && !slices.ContainsFunc(d.Keep, func(k retention.Kept) bool { return k.ID == protected.ID }) {
			t.Errorf("%s was pruned although it is protected", protected.ID)
		}
	}
	// Deciding again on the survivors changes nothing.
	survivors := make([]retention.Candidate, len(d.Keep))
	for i, k := range d.Keep {
		survivors[i] = k.Candidate
	}
	again, err := retention.Decide(policy, survivors, now, loc)
	if err != nil {
		t.Fatalf("Decide on the survivors: %v", err)
	}
	if len(again.Prune) != 0 || !slices.Equal(keepLines(again), keepLines(d)) {
		t.Errorf("deciding again on the survivors prunes %v and keeps\n  %s\nwas\n  %s",
			ids(again.Prune), strings.Join(keepLines(again), "\n  "), strings.Join(keepLines(d), "\n  "))
	}
	// Next: what time alone prunes first. When it is empty, no amount of time prunes anything;
	// otherwise a run at NextAt prunes at least the oldest of it.
	if len(d.Next) == 0 {
		if later, _ := retention.Decide(policy, survivors, now.AddDate(50, 0, 0), loc); len(later.Prune) != 0 {
			t.Errorf("Next is empty, yet fifty years later %v are pruned", ids(later.Prune))
		}
		return
	}
	for _, n := range d.Next {
		if !slices.ContainsFunc(d.Keep, func(k retention.Kept) bool { return k.ID == n.ID }) {
			t.Errorf("next %s is not a survivor", n.ID)
		}
	}
	later, err := retention.Decide(policy, survivors, d.NextAt, loc)
	if err != nil {
		t.Fatal(err)
	}
	if len(later.Prune) == 0 || later.Prune[0].ID != d.Next[0].ID {
		t.Errorf("at NextAt %s a run prunes %v, want it to start with %v", d.NextAt, ids(later.Prune), ids(d.Next))
	}
	if before, _ := retention.Decide(policy, survivors, d.NextAt.Add(-time.Second), loc); len(before.Prune) != 0 && !monthEndNear(d.NextAt, loc) {
		t.Errorf("a second before NextAt %s a run already prunes %v", d.NextAt, ids(before.Prune))
	}
}

// monthEndNear says whether t is within three days after the start of a month, where maxAge's
// calendar arithmetic can prune before NextAt (see Decision.NextAt).
func monthEndNear(t time.Time, loc *time.Location) bool {
	return t.In(loc).Day() <= 4
}
