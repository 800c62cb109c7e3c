package retention_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/retention"
)

// at parses an RFC 3339 time; the tests write every instant in UTC so that the time zone under
// test is the only one that cuts days.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func bk(id, when string) retention.Candidate {
	return retention.Candidate{ID: id, Time: at(when)}
}

// incremental is a backup that cannot be restored without parent.
func incremental(id, when, parent string) retention.Candidate {
	return retention.Candidate{ID: id, Time: at(when), Needs: parent}
}

func verified(id, when string) retention.Candidate {
	return retention.Candidate{ID: id, Time: at(when), Verified: true}
}

func amsterdam(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatalf("load Europe/Amsterdam: %v", err)
	}
	return loc
}

// keepLines renders survivors as "id: reason, reason", newest first, for readable comparisons.
func keepLines(d retention.Decision) []string {
	var out []string
	for _, k := range d.Keep {
		out = append(out, k.ID+": "+strings.Join(k.Reasons, ", "))
	}
	return out
}

func ids(cs []retention.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestDecide(t *testing.T) {
	days5 := []retention.Candidate{
		bk("0501", "2026-05-01T10:00:00Z"), bk("0502", "2026-05-02T10:00:00Z"), bk("0503", "2026-05-03T10:00:00Z"),
		bk("0504", "2026-05-04T10:00:00Z"), bk("0505", "2026-05-05T10:00:00Z"),
	}
	tests := []struct {
		name      string
		policy    v1alpha1.RetentionPolicySpec
		backups   []retention.Candidate
		now       string
		amsterdam bool // cut periods in Europe/Amsterdam instead of UTC
		keep      []string
		prune     []string
		next      []string
		nextAt    string
	}{
		{
			name:   "no backups",
			policy: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](3)},
		},
		{
			name:    "keepLast keeps the newest N",
			policy:  v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](3)},
			backups: days5,
			keep:    []string{"0505: newest, last 3", "0504: last 3", "0503: last 3"},
			prune:   []string{"0501", "0502"},
		},
		{
			name:   "keepDaily keeps the newest of each day and skips days without backups",
			policy: v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("0505-late", "2026-05-05T20:00:00Z"), bk("0505-early", "2026-05-05T08:00:00Z"),
				bk("0503-late", "2026-05-03T09:00:00Z"), bk("0503-early", "2026-05-03T07:00:00Z"),
				bk("0501", "2026-05-01T10:00:00Z"),
			},
			keep:  []string{"0505-late: newest, daily 2026-05-05", "0503-late: daily 2026-05-03"},
			prune: []string{"0501", "0503-early", "0505-early"},
		},
		{
			name:   "keepWeekly counts ISO weeks, which cross the new year",
			policy: v1alpha1.RetentionPolicySpec{KeepWeekly: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("mon-0105", "2026-01-05T10:00:00Z"), // 2026-W02
				bk("sun-0104", "2026-01-04T10:00:00Z"), // 2026-W01, which began on Monday 29 December
				bk("mon-1229", "2025-12-29T09:00:00Z"),
				bk("sun-1228", "2025-12-28T10:00:00Z"), // 2025-W52
				bk("mon-1222", "2025-12-22T10:00:00Z"),
			},
			now:   "2026-01-06T12:00:00Z",
			keep:  []string{"mon-0105: newest, weekly 2026-W02", "sun-0104: weekly 2026-W01"},
			prune: []string{"mon-1222", "sun-1228", "mon-1229"},
		},
		{
			name:   "keepMonthly skips months without backups",
			policy: v1alpha1.RetentionPolicySpec{KeepMonthly: ptr.To[int32](4)},
			backups: []retention.Candidate{
				bk("0502", "2026-05-02T10:00:00Z"), bk("0430", "2026-04-30T23:00:00Z"), bk("0410", "2026-04-10T10:00:00Z"),
				bk("0331", "2026-03-31T10:00:00Z"), bk("0115", "2026-01-15T10:00:00Z"),
			},
			keep:  []string{"0502: newest, monthly 2026-05", "0430: monthly 2026-04", "0331: monthly 2026-03", "0115: monthly 2026-01"},
			prune: []string{"0410"},
		},
		{
			name:   "keepMonthly in Europe/Amsterdam puts 23:00 UTC on 30 April into May",
			policy: v1alpha1.RetentionPolicySpec{KeepMonthly: ptr.To[int32](3)},
			backups: []retention.Candidate{
				bk("0502", "2026-05-02T10:00:00Z"), bk("0430", "2026-04-30T23:00:00Z"), bk("0410", "2026-04-10T10:00:00Z"),
				bk("0331", "2026-03-31T10:00:00Z"), bk("0115", "2026-01-15T10:00:00Z"),
			},
			amsterdam: true,
			keep:      []string{"0502: newest, monthly 2026-05", "0410: monthly 2026-04", "0331: monthly 2026-03"},
			prune:     []string{"0115", "0430"},
		},
		{
			name:   "keepYearly",
			policy: v1alpha1.RetentionPolicySpec{KeepYearly: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("2026", "2026-03-01T10:00:00Z"), bk("2025-end", "2025-12-31T12:00:00Z"), bk("2025-mid", "2025-06-01T10:00:00Z"),
				bk("2024", "2024-12-31T10:00:00Z"), bk("2023", "2023-05-05T10:00:00Z"),
			},
			keep:  []string{"2026: newest, yearly 2026", "2025-end: yearly 2025"},
			prune: []string{"2023", "2024", "2025-mid"},
		},
		{
			name:   "maxAge alone keeps what is younger; exactly maxAge old is not younger",
			policy: v1alpha1.RetentionPolicySpec{MaxAge: "5d"},
			backups: []retention.Candidate{
				bk("young", "2026-05-09T10:00:00Z"), bk("just-younger", "2026-05-05T12:00:01Z"),
				bk("exactly-5d", "2026-05-05T12:00:00Z"), bk("old", "2026-05-01T10:00:00Z"),
			},
			keep:   []string{"young: newest, maxAge 5d", "just-younger: maxAge 5d"},
			prune:  []string{"old", "exactly-5d"},
			next:   []string{"just-younger"},
			nextAt: "2026-05-10T12:00:01Z",
		},
		{
			name:   "maxAge counts calendar months, not 30 days",
			policy: v1alpha1.RetentionPolicySpec{MaxAge: "1mo"},
			backups: []retention.Candidate{
				bk("0301", "2026-03-01T10:00:00Z"), bk("0215-after", "2026-02-15T13:00:00Z"),
				bk("0215-before", "2026-02-15T11:00:00Z"), bk("0131", "2026-01-31T10:00:00Z"),
			},
			now:    "2026-03-15T12:00:00Z",
			keep:   []string{"0301: newest, maxAge 1mo", "0215-after: maxAge 1mo"},
			prune:  []string{"0131", "0215-before"},
			next:   []string{"0215-after"},
			nextAt: "2026-03-15T13:00:00Z",
		},
		{
			name: "rules add up and a survivor lists every rule that keeps it",
			policy: v1alpha1.RetentionPolicySpec{
				KeepLast: ptr.To[int32](1), KeepDaily: ptr.To[int32](2), KeepMonthly: ptr.To[int32](2), MaxAge: "2d",
			},
			backups: []retention.Candidate{
				bk("a", "2026-05-10T06:00:00Z"), bk("b", "2026-05-09T20:00:00Z"), bk("c", "2026-05-09T08:00:00Z"),
				bk("d", "2026-05-07T10:00:00Z"), bk("e", "2026-04-20T10:00:00Z"), bk("f", "2026-04-05T10:00:00Z"),
				bk("g", "2026-03-30T10:00:00Z"),
			},
			keep: []string{
				"a: newest, last 1, daily 2026-05-10, monthly 2026-05, maxAge 2d",
				"b: daily 2026-05-09, maxAge 2d",
				"c: maxAge 2d",
				"e: monthly 2026-04",
			},
			prune:  []string{"g", "f", "d"},
			next:   []string{"c"},
			nextAt: "2026-05-11T08:00:00Z",
		},
		{
			name:    "minKeep fills up with the newest of the rest",
			policy:  v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1), MinKeep: ptr.To[int32](3)},
			backups: days5,
			keep:    []string{"0505: newest, last 1", "0504: minKeep 3", "0503: minKeep 3"},
			prune:   []string{"0501", "0502"},
		},
		{
			name:    "minKeep above the number of backups keeps them all",
			policy:  v1alpha1.RetentionPolicySpec{MaxAge: "1d", MinKeep: ptr.To[int32](10)},
			backups: days5[:3],
			keep:    []string{"0503: newest", "0502: minKeep 10", "0501: minKeep 10"},
		},
		{
			name:    "the newest backup stays when every rule lets it go",
			policy:  v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](0), MaxAge: "1d"},
			backups: days5,
			keep:    []string{"0505: newest"},
			prune:   []string{"0501", "0502", "0503", "0504"},
		},
		{
			name:   "the newest verified backup stays however old; older verified ones do not",
			policy: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("0505", "2026-05-05T10:00:00Z"), bk("0504", "2026-05-04T10:00:00Z"), bk("0503", "2026-05-03T10:00:00Z"),
				verified("0502", "2026-05-02T10:00:00Z"), verified("0501", "2026-05-01T10:00:00Z"),
			},
			keep:  []string{"0505: newest, last 2", "0504: last 2", "0502: newest verified"},
			prune: []string{"0501", "0503"},
		},
		{
			name:    "the newest backup can be the newest verified one",
			policy:  v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)},
			backups: []retention.Candidate{verified("0505", "2026-05-05T10:00:00Z"), bk("0504", "2026-05-04T10:00:00Z")},
			keep:    []string{"0505: newest, newest verified, last 1"},
			prune:   []string{"0504"},
		},
		{
			name:    "backups of the same instant are ordered by id, as catalog.List does",
			policy:  v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)},
			backups: []retention.Candidate{bk("a", "2026-05-05T10:00:00Z"), bk("b", "2026-05-05T10:00:00Z")},
			keep:    []string{"b: newest, last 1"},
			prune:   []string{"a"},
		},
		{
			// 25 October 2026 is 25 hours long in Amsterdam: 22:30 UTC on the 24th is 00:30 CEST on
			// the 25th, and 22:30 UTC on the 25th is 23:30 CET on the same day.
			name:   "keepDaily in Europe/Amsterdam: the 25-hour day holds two nightly backups",
			policy: v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](3)},
			backups: []retention.Candidate{
				bk("1023", "2026-10-23T22:30:00Z"), bk("1024", "2026-10-24T22:30:00Z"),
				bk("1025", "2026-10-25T22:30:00Z"), bk("1026", "2026-10-26T22:30:00Z"),
			},
			now:       "2026-10-27T12:00:00Z",
			amsterdam: true,
			keep:      []string{"1026: newest, daily 2026-10-26", "1025: daily 2026-10-25", "1023: daily 2026-10-24"},
			prune:     []string{"1024"},
		},
		{
			name:   "keepDaily in UTC: the same backups are on four days",
			policy: v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](3)},
			backups: []retention.Candidate{
				bk("1023", "2026-10-23T22:30:00Z"), bk("1024", "2026-10-24T22:30:00Z"),
				bk("1025", "2026-10-25T22:30:00Z"), bk("1026", "2026-10-26T22:30:00Z"),
			},
			now:   "2026-10-27T12:00:00Z",
			keep:  []string{"1026: newest, daily 2026-10-26", "1025: daily 2026-10-25", "1024: daily 2026-10-24"},
			prune: []string{"1023"},
		},
		{
			// 29 March 2026 is 23 hours long in Amsterdam: 23:30 UTC on the 28th is 00:30 CET on the
			// 29th, 21:30 UTC on the 29th is 23:30 CEST on the same day.
			name:   "keepDaily in Europe/Amsterdam: the 23-hour day",
			policy: v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("a", "2026-03-27T23:30:00Z"), bk("b", "2026-03-28T23:30:00Z"),
				bk("c", "2026-03-29T21:30:00Z"), bk("d", "2026-03-29T22:30:00Z"),
			},
			now:       "2026-03-30T12:00:00Z",
			amsterdam: true,
			keep:      []string{"d: newest, daily 2026-03-30", "c: daily 2026-03-29"},
			prune:     []string{"a", "b"},
		},
		{
			name:   "keepDaily in UTC around the same change",
			policy: v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("a", "2026-03-27T23:30:00Z"), bk("b", "2026-03-28T23:30:00Z"),
				bk("c", "2026-03-29T21:30:00Z"), bk("d", "2026-03-29T22:30:00Z"),
			},
			now:   "2026-03-30T12:00:00Z",
			keep:  []string{"d: newest, daily 2026-03-29", "b: daily 2026-03-28"},
			prune: []string{"a", "c"},
		},
		{
			// Noon CEST on 29 March is 11:00 UTC on the 28th plus one calendar day of 23 hours.
			name:   "maxAge 1d in Europe/Amsterdam is a calendar day, 23 hours across the spring change",
			policy: v1alpha1.RetentionPolicySpec{MaxAge: "1d"},
			backups: []retention.Candidate{
				bk("a", "2026-03-29T09:00:00Z"), bk("b-22h30", "2026-03-28T11:30:00Z"), bk("c-23h30", "2026-03-28T10:30:00Z"),
			},
			now:       "2026-03-29T10:00:00Z",
			amsterdam: true,
			keep:      []string{"a: newest, maxAge 1d", "b-22h30: maxAge 1d"},
			prune:     []string{"c-23h30"},
			next:      []string{"b-22h30"},
			nextAt:    "2026-03-29T10:30:00Z", // 12:30 CEST, a calendar day after 12:30 CET
		},
		{
			name:   "maxAge 1d in UTC is 24 hours",
			policy: v1alpha1.RetentionPolicySpec{MaxAge: "1d"},
			backups: []retention.Candidate{
				bk("a", "2026-03-29T09:00:00Z"), bk("b-22h30", "2026-03-28T11:30:00Z"), bk("c-23h30", "2026-03-28T10:30:00Z"),
			},
			now:    "2026-03-29T10:00:00Z",
			keep:   []string{"a: newest, maxAge 1d", "b-22h30: maxAge 1d", "c-23h30: maxAge 1d"},
			next:   []string{"c-23h30"},
			nextAt: "2026-03-29T10:30:00Z",
		},
		{
			name:   "nothing falls out by age while minKeep holds the survivors",
			policy: v1alpha1.RetentionPolicySpec{MaxAge: "5d", MinKeep: ptr.To[int32](2)},
			backups: []retention.Candidate{
				bk("young", "2026-05-09T10:00:00Z"), bk("younger-still", "2026-05-09T11:00:00Z"), bk("old", "2026-05-01T10:00:00Z"),
			},
			keep:  []string{"younger-still: newest, maxAge 5d", "young: maxAge 5d"},
			prune: []string{"old"},
		},
		{
			name:   "what falls out by age next is what no other rule keeps",
			policy: v1alpha1.RetentionPolicySpec{MaxAge: "5d", KeepDaily: ptr.To[int32](1)},
			backups: []retention.Candidate{
				bk("0509", "2026-05-09T10:00:00Z"), bk("0508", "2026-05-08T10:00:00Z"),
				bk("0507-b", "2026-05-07T10:00:00Z"), bk("0507-a", "2026-05-07T10:00:00Z"),
			},
			keep:   []string{"0509: newest, daily 2026-05-09, maxAge 5d", "0508: maxAge 5d", "0507-b: maxAge 5d", "0507-a: maxAge 5d"},
			next:   []string{"0507-a", "0507-b"},
			nextAt: "2026-05-12T10:00:00Z",
		},
		{
			name:   "a kept incremental backup keeps its whole chain down to the full backup",
			policy: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)},
			backups: []retention.Candidate{
				incremental("0505", "2026-05-05T10:00:00Z", "0504"), incremental("0504", "2026-05-04T10:00:00Z", "0503"),
				bk("0503", "2026-05-03T10:00:00Z"), incremental("0502", "2026-05-02T10:00:00Z", "0501"), bk("0501", "2026-05-01T10:00:00Z"),
			},
			keep:  []string{"0505: newest, last 1", "0504: needed by 0505", "0503: needed by 0504"},
			prune: []string{"0501", "0502"},
		},
		{
			name:   "a chain whose full backup is gone keeps what is left of it, and prunes nothing it cannot find",
			policy: v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](2)},
			backups: []retention.Candidate{
				incremental("0505", "2026-05-05T10:00:00Z", "0504"), incremental("0504", "2026-05-04T10:00:00Z", "0499"),
				bk("0503", "2026-05-03T10:00:00Z"),
			},
			keep:  []string{"0505: newest, daily 2026-05-05", "0504: daily 2026-05-04, needed by 0505"},
			prune: []string{"0503"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := at("2026-05-10T12:00:00Z")
			if tt.now != "" {
				now = at(tt.now)
			}
			var loc *time.Location
			if tt.amsterdam {
				loc = amsterdam(t)
			}
			// Decide must not depend on the order it is given.
			input := slices.Clone(tt.backups)
			slices.Reverse(input)
			d, err := retention.Decide(tt.policy, input, now, loc)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got := keepLines(d); !slices.Equal(got, tt.keep) {
				t.Errorf("kept:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.keep, "\n  "))
			}
			if got := ids(d.Prune); !slices.Equal(got, tt.prune) {
				t.Errorf("pruned %v, want %v", got, tt.prune)
			}
			if got := ids(d.Next); !slices.Equal(got, tt.next) {
				t.Errorf("next %v, want %v", got, tt.next)
			}
			var wantNextAt time.Time
			if tt.nextAt != "" {
				wantNextAt = at(tt.nextAt)
			}
			if !d.NextAt.Equal(wantNextAt) {
				t.Errorf("next at %v, want %v", d.NextAt.UTC(), wantNextAt)
			}
			if d.Held != "" {
				t.Errorf("held %q, want nothing held", d.Held)
			}
		})
	}
}

func TestDecideRefuses(t *testing.T) {
	ok := []retention.Candidate{bk("a", "2026-05-01T10:00:00Z")}
	tests := []struct {
		name    string
		policy  v1alpha1.RetentionPolicySpec
		backups []retention.Candidate
		wantErr string
	}{
		{"bad maxAge", v1alpha1.RetentionPolicySpec{MaxAge: "5 days"}, ok, `retention policy maxAge: "5 days" is not a period`},
		{"zero maxAge", v1alpha1.RetentionPolicySpec{MaxAge: "0d"}, ok, "longer than zero"},
		{"negative keep", v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](-1)}, ok, "keepDaily is -1; it must not be negative"},
		{"minKeep zero", v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1), MinKeep: ptr.To[int32](0)}, ok, "minKeep is 0"},
		{"no rule", v1alpha1.RetentionPolicySpec{MinKeep: ptr.To[int32](3)}, ok, "sets no rule"},
		{"id twice", v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)},
			[]retention.Candidate{bk("a", "2026-05-01T10:00:00Z"), bk("a", "2026-05-02T10:00:00Z")}, "backup a is listed twice"},
		{"no time", v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}, []retention.Candidate{{ID: "a"}}, "backup a has no time"},
		{"no id", v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}, []retention.Candidate{{Time: at("2026-05-01T10:00:00Z")}}, "without an id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := retention.Decide(tt.policy, tt.backups, at("2026-05-10T12:00:00Z"), nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decide error = %v, want it to contain %q", err, tt.wantErr)
			}
			if len(d.Prune) != 0 {
				t.Fatalf("Decide pruned %v along with its error", ids(d.Prune))
			}
		})
	}
}

// Every pruned backup says why each rule lets it go; a kept one says nothing there.
func TestDecideSaysWhyEachBackupIsPruned(t *testing.T) {
	policy := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2), KeepDaily: ptr.To[int32](2), KeepMonthly: ptr.To[int32](1),
		MaxAge: "2d", MinKeep: ptr.To[int32](2)}
	backups := []retention.Candidate{
		bk("0510-late", "2026-05-10T20:00:00Z"), bk("0510-early", "2026-05-10T08:00:00Z"),
		bk("0509", "2026-05-09T10:00:00Z"), bk("0501", "2026-05-01T10:00:00Z"), bk("0420", "2026-04-20T10:00:00Z"),
	}
	d, err := retention.Decide(policy, backups, at("2026-05-11T12:00:00Z"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(d.Prune), []string{"0420", "0501"}) {
		t.Fatalf("pruned %v, want 0420 and 0501 (keep %v)", ids(d.Prune), keepLines(d))
	}
	want := map[string][]string{
		"0501": {"keepLast 2: 3 newer backups", "keepDaily 2: 2026-05-01 is not among the 2 most recent days with a backup",
			"keepMonthly 1: not the newest backup of 2026-05", "maxAge 2d: taken at or before 2026-05-09T12:00:00Z", "minKeep 2: met by newer backups"},
		"0420": {"keepLast 2: 4 newer backups", "keepDaily 2: 2026-04-20 is not among the 2 most recent days with a backup",
			"keepMonthly 1: 2026-04 is not among the 1 most recent months with a backup", "maxAge 2d: taken at or before 2026-05-09T12:00:00Z",
			"minKeep 2: met by newer backups"},
	}
	if len(d.Why) != len(want) {
		t.Errorf("why names %d backups, want the %d pruned: %v", len(d.Why), len(want), d.Why)
	}
	for id, w := range want {
		if !slices.Equal(d.Why[id], w) {
			t.Errorf("why %s:\n got  %q\n want %q", id, d.Why[id], w)
		}
	}
	// Same-day backups: the earlier one is not its day's newest.
	d, err = retention.Decide(v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](5)}, backups, at("2026-05-11T12:00:00Z"), amsterdam(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Why["0510-early"]; !slices.Equal(got, []string{"keepDaily 5: not the newest backup of 2026-05-10"}) {
		t.Errorf("why 0510-early = %q (pruned %v)", got, ids(d.Prune))
	}
}

func TestHoldPrunesNothing(t *testing.T) {
	backups := []retention.Candidate{bk("old", "2020-01-01T00:00:00Z"), verified("new", "2026-05-01T00:00:00Z")}
	d := retention.Hold(backups, "manifest of acme/nightly/x could not be read")
	want := []string{"new: held", "old: held"}
	if got := keepLines(d); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	if len(d.Prune) != 0 || len(d.Next) != 0 {
		t.Fatalf("pruned %v, next %v; want nothing", ids(d.Prune), ids(d.Next))
	}
	if d.Held != "manifest of acme/nightly/x could not be read" {
		t.Fatalf("held %q", d.Held)
	}
}

// ExampleDecide shows the vendors' "5 days, 2 months, 1 year" on a nightly schedule.
func ExampleDecide() {
	var backups []retention.Candidate
	start := time.Date(2025, 11, 20, 2, 0, 0, 0, time.UTC)
	for i := range 180 {
		t := start.AddDate(0, 0, i)
		backups = append(backups, retention.Candidate{ID: t.Format("20060102"), Time: t, Verified: t.Day() == 1})
	}
	policy := v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](5), KeepMonthly: ptr.To[int32](2), KeepYearly: ptr.To[int32](1)}
	d, err := retention.Decide(policy, backups, start.AddDate(0, 0, 180), nil)
	if err != nil {
		panic(err)
	}
	for _, k := range d.Keep {
		fmt.Println(k.ID, strings.Join(k.Reasons, ", "))
	}
	fmt.Println("pruned", len(d.Prune), "oldest", d.Prune[0].ID)
	// Output:
	// 20260518 newest, daily 2026-05-18, monthly 2026-05, yearly 2026
	// 20260517 daily 2026-05-17
	// 20260516 daily 2026-05-16
	// 20260515 daily 2026-05-15
	// 20260514 daily 2026-05-14
	// 20260501 newest verified
	// 20260430 monthly 2026-04
	// pruned 173 oldest 20251120
}
