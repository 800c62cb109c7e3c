// Package retention decides which backups of one tenant and schedule are kept and which are pruned.
//
// Decide is a pure function of the policy, the backups, the time and the tenant's time zone. Its
// semantics are those of restic's and borg's forget/prune, which the RetentionPolicy API's doc
// comments promise ("a backup is kept when any rule keeps it"):
//
//   - Every rule selects survivors and a backup survives when at least one rule selects it. Rules
//     never remove what another rule keeps; what no rule keeps is pruned.
//   - keepLast N selects the N newest backups.
//   - keepDaily, keepWeekly, keepMonthly and keepYearly N select the newest backup in each of the N
//     most recent days (ISO weeks, months, years) that contain a backup. Periods without a backup
//     do not count, so a schedule that stopped running keeps its history instead of losing it as
//     the calendar moves on. Periods are cut in the tenant's time zone (UTC when none is given), so
//     a day in Europe/Amsterdam is 23 or 25 hours long at the clock changes.
//   - maxAge selects every backup younger than maxAge: taken after the instant one period before
//     now, counted on the calendar in the tenant's time zone ("1d" is one calendar day, "1mo" one
//     calendar month, as schedule.Period.Before says). Like restic's --keep-within it is a rule
//     that keeps, not a cap that removes: a policy of maxAge alone keeps everything younger than
//     maxAge and prunes everything older, and combined with keep rules it adds the recent history
//     to what they keep. (The shipped sample policy relies on this: maxAge 5d keeps every backup
//     of the last five days, keepDaily and keepMonthly the longer history.)
//   - Two protections hold whatever the rules say: the newest backup (the newest successful one,
//     since only complete backups are candidates) and the newest backup with a successful
//     verification, however old it is, so that a restore known to work always remains.
//   - minKeep (1 when unset) is a floor: when the rules and protections keep fewer backups, the
//     newest of the others are kept too until minKeep remain (or all, when there are fewer).
//   - A listing that may be incomplete prunes nothing: Hold keeps every backup with the reason.
//   - A kept incremental backup keeps what it needs (Candidate.Needs, transitively), with the
//     reason "needed by <id>": pruning its full backup would make it unrestorable.
//
// It reads no storage: package catalog lists backups, turns them into candidates and deletes what
// a decision prunes.
package retention

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/schedule"
)

// Candidate is one complete backup as retention sees it.
type Candidate struct {
	ID string
	// Time orders backups and places them in days, weeks, months and years: the backup's start,
	// when its snapshot of the database was taken.
	Time time.Time
	// Verified says that a verification of the backup succeeded.
	Verified bool
	// Needs is the id of the backup this one cannot be restored without: an incremental backup's
	// parent. Whatever keeps this one keeps that one too.
	Needs string
}

// Kept is a backup that survives, with every reason it does, e.g. "newest", "last 3",
// "daily 2026-05-01", "weekly 2026-W18", "monthly 2026-05", "yearly 2026", "maxAge 5d",
// "minKeep 2", "newest verified".
type Kept struct {
	Candidate
	Reasons []string
}

// Decision says which backups survive and which are pruned. Every input backup is in exactly one
// of Keep and Prune.
type Decision struct {
	// Keep holds the survivors, newest first.
	Keep []Kept
	// Prune holds the backups to delete, oldest first (the order to delete them in).
	Prune []Candidate
	// Held, when set, is why nothing is pruned regardless of the rules.
	Held string
	// Next is what will be pruned next if no backup is added or removed: the survivors that
	// then fall out first as time passes, because they grow older than maxAge. Oldest first;
	// empty when time alone prunes nothing (no maxAge, every survivor kept by something that
	// does not age, or minKeep holding them). New backups also push old ones out through the
	// keep rules; that depends on when they come and is not predicted here.
	Next []Candidate
	// NextAt is when the oldest of Next turns maxAge old, counted forward on the calendar in
	// the tenant's time zone; zero when Next is empty. Around month ends a run may prune them up
	// to three days earlier, because maxAge counts back from the run's time and a month back from
	// 31 March is 3 March (time.AddDate's normalization).
	NextAt time.Time
	// Why says, for each backup in Prune by id, why each rule of the policy lets it go, e.g.
	// "keepLast 10: 12 newer backups", "keepDaily 60: not the newest backup of 2026-05-01",
	// "keepMonthly 12: 2025-03 is not among the 12 most recent months with a backup",
	// "maxAge 5d: taken at or before 2026-05-05T12:00:00Z". A pruned backup is one no rule
	// keeps, so this is the whole reason: what the prune records hold for an auditor.
	Why map[string][]string
}

// Reasons that are not a rule's label.
const (
	ReasonNewest         = "newest"
	ReasonNewestVerified = "newest verified"
	ReasonHeld           = "held"
)

// Decide applies policy to the backups of one tenant and schedule at now. Days, weeks, months and
// years are cut in loc, UTC when nil. The input order does not matter; IDs must be unique and times
// set. An invalid policy (a bad maxAge, a negative count, minKeep below one, no rule at all) is an
// error, never an empty rule set that would prune everything.
func Decide(policy v1alpha1.RetentionPolicySpec, backups []Candidate, now time.Time, loc *time.Location) (Decision, error) {
	if loc == nil {
		loc = time.UTC
	}
	r, err := parsePolicy(policy)
	if err != nil {
		return Decision{}, err
	}
	sorted, err := newestFirst(backups)
	if err != nil {
		return Decision{}, err
	}
	var cutoff time.Time
	if r.maxAge != nil {
		cutoff = r.maxAge.Before(now.In(loc))
	}
	d := decide(r, sorted, cutoff, loc)
	d.Next, d.NextAt = next(r, d.Keep, loc)
	if len(d.Prune) > 0 {
		d.Why = whyPruned(r, sorted, cutoff, loc, d.Prune)
	}
	return d, nil
}

// Hold is the decision when the listing of backups may be incomplete (storage answered only in
// part, a manifest could not be read): every backup listed is kept and nothing is pruned, because
// the newest backup or the newest verified one might be among those missing.
func Hold(backups []Candidate, why string) Decision {
	sorted := slices.Clone(backups)
	slices.SortStableFunc(sorted, compareNewestFirst)
	d := Decision{Held: why}
	for _, c := range sorted {
		d.Keep = append(d.Keep, Kept{Candidate: c, Reasons: []string{ReasonHeld}})
	}
	return d
}

// rules is a validated policy.
type rules struct {
	last       int
	periodic   [4]int // per entry of periods; 0 is off
	maxAge     *schedule.Period
	maxAgeText string
	minKeep    int
}

func parsePolicy(p v1alpha1.RetentionPolicySpec) (rules, error) {
	counts := []struct {
		name string
		v    *int32
	}{{"keepLast", p.KeepLast}, {"keepDaily", p.KeepDaily}, {"keepWeekly", p.KeepWeekly}, {"keepMonthly", p.KeepMonthly}, {"keepYearly", p.KeepYearly}}
	var r rules
	anyRule := p.MaxAge != ""
	for i, c := range counts {
		if c.v == nil {
			continue
		}
		anyRule = true
		if *c.v < 0 {
			return rules{}, fmt.Errorf("retention policy: %s is %d; it must not be negative", c.name, *c.v)
		}
		if i == 0 {
			r.last = int(*c.v)
		} else {
			r.periodic[i-1] = int(*c.v)
		}
	}
	if !anyRule {
		// The CRD refuses this too; a zero spec reaching here is a caller's bug, and obeying it
		// would prune all but the newest backup.
		return rules{}, errors.New("retention policy sets no rule: set keepLast, keepDaily, keepWeekly, keepMonthly, keepYearly or maxAge")
	}
	if p.MaxAge != "" {
		period, err := schedule.ParsePeriod(p.MaxAge)
		if err != nil {
			return rules{}, fmt.Errorf("retention policy maxAge: %w", err)
		}
		r.maxAge, r.maxAgeText = &period, p.MaxAge
	}
	r.minKeep = 1
	if p.MinKeep != nil {
		if *p.MinKeep < 1 {
			return rules{}, fmt.Errorf("retention policy: minKeep is %d; it must be at least 1", *p.MinKeep)
		}
		r.minKeep = int(*p.MinKeep)
	}
	return r, nil
}

// newestFirst copies and sorts the backups the way catalog.List does: newest first, ties by
// descending id. It refuses what would make the decision ambiguous.
func newestFirst(backups []Candidate) ([]Candidate, error) {
	sorted := slices.Clone(backups)
	slices.SortFunc(sorted, compareNewestFirst)
	seen := make(map[string]bool, len(sorted))
	for _, c := range sorted {
		if c.ID == "" {
			return nil, errors.New("a backup without an id")
		}
		if c.Time.IsZero() {
			return nil, fmt.Errorf("backup %s has no time", c.ID)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("backup %s is listed twice", c.ID)
		}
		seen[c.ID] = true
	}
	return sorted, nil
}

func compareNewestFirst(a, b Candidate) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// period is a calendar bucket of a keep rule. key is cheap and increases with time in one
// location; label is what the reason shows.
type period struct {
	rule  string
	key   func(t time.Time) int
	label func(t time.Time) string
}

// periodRules name the keep rules of periods, in the order of periods, as the policy spells
// them, with the period's plural for the reasons a backup is pruned.
var periodRules = [4]struct{ field, plural string }{{"keepDaily", "days"}, {"keepWeekly", "weeks"}, {"keepMonthly", "months"}, {"keepYearly", "years"}}

var periods = [4]period{
	{"daily", func(t time.Time) int { y, m, d := t.Date(); return y*10000 + int(m)*100 + d }, func(t time.Time) string { return t.Format("2006-01-02") }},
	{"weekly", func(t time.Time) int { y, w := t.ISOWeek(); return y*100 + w }, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%04d-W%02d", y, w) }},
	{"monthly", func(t time.Time) int { return t.Year()*100 + int(t.Month()) }, func(t time.Time) string { return t.Format("2006-01") }},
	{"yearly", func(t time.Time) int { return t.Year() }, func(t time.Time) string { return t.Format("2006") }},
}

// decide applies the rules to backups sorted newest first. A zero cutoff means no maxAge rule;
// otherwise backups after cutoff are young enough to keep.
func decide(r rules, sorted []Candidate, cutoff time.Time, loc *time.Location) Decision {
	reasons := make([][]string, len(sorted))
	keep := func(i int, why string) { reasons[i] = append(reasons[i], why) }

	if len(sorted) > 0 {
		keep(0, ReasonNewest)
	}
	for i, c := range sorted {
		if c.Verified {
			keep(i, ReasonNewestVerified)
			break
		}
	}
	for i := 0; i < r.last && i < len(sorted); i++ {
		keep(i, fmt.Sprintf("last %d", r.last))
	}
	for p, n := range r.periodic {
		if n == 0 {
			continue
		}
		// Sorted newest first, a backup is the newest of its period exactly when its period
		// differs from the previous (newer) backup's: calendar periods in one location only
		// move forward with time.
		taken, prev := 0, 0
		for i, c := range sorted {
			t := c.Time.In(loc)
			k := periods[p].key(t)
			if i > 0 && k == prev {
				continue
			}
			prev = k
			if taken == n {
				break
			}
			taken++
			keep(i, periods[p].rule+" "+periods[p].label(t))
		}
	}
	if !cutoff.IsZero() {
		for i, c := range sorted {
			if !c.Time.After(cutoff) {
				break
			}
			keep(i, "maxAge "+r.maxAgeText)
		}
	}
	kept := 0
	for _, why := range reasons {
		if len(why) > 0 {
			kept++
		}
	}
	for i := 0; i < len(sorted) && kept < r.minKeep; i++ {
		if len(reasons[i]) == 0 {
			keep(i, fmt.Sprintf("minKeep %d", r.minKeep))
			kept++
		}
	}

	keepNeeded(sorted, reasons)

	var d Decision
	for i, c := range sorted {
		if len(reasons[i]) > 0 {
			d.Keep = append(d.Keep, Kept{Candidate: c, Reasons: reasons[i]})
		}
	}
	for i := len(sorted) - 1; i >= 0; i-- {
		if len(reasons[i]) == 0 {
			d.Prune = append(d.Prune, sorted[i])
		}
	}
	return d
}

// next finds what time alone prunes first among the survivors. Keep rules, the protections and
// minKeep do not change as time passes without new backups (periods count only those that contain
// a backup), so only maxAge lets a survivor go: the oldest survivor kept by maxAge alone, at the
// moment it stops being younger than maxAge. Deciding again at that cutoff tells which go then,
// after minKeep had its say.
func next(r rules, survivors []Kept, loc *time.Location) ([]Candidate, time.Time) {
	if r.maxAge == nil {
		return nil, time.Time{}
	}
	oldest := -1
	for i := len(survivors) - 1; i >= 0; i-- {
		if why := survivors[i].Reasons; len(why) == 1 && why[0] == "maxAge "+r.maxAgeText {
			oldest = i
			break
		}
	}
	if oldest < 0 {
		return nil, time.Time{}
	}
	sorted := make([]Candidate, len(survivors))
	for i, k := range survivors {
		sorted[i] = k.Candidate
	}
	at := survivors[oldest].Time
	later := decide(r, sorted, at, loc)
	if len(later.Prune) == 0 {
		return nil, time.Time{}
	}
	p := r.maxAge
	return later.Prune, at.In(loc).Add(p.Exact).AddDate(p.Years, p.Months, p.Days)
}

// whyPruned explains, for each pruned backup, why every rule of r lets it go. sorted are all the
// backups, newest first, as decide saw them; cutoff is the maxAge cutoff (zero without one).
func whyPruned(r rules, sorted []Candidate, cutoff time.Time, loc *time.Location, pruned []Candidate) map[string][]string {
	index := make(map[string]int, len(sorted))
	for i, c := range sorted {
		index[c.ID] = i
	}
	// For each rule of periods: the rank of each backup's period among the periods that hold a
	// backup (1 is the newest), and whether it is the newest backup of its period.
	type place struct {
		rank   int
		newest bool
	}
	var places [4][]place
	for p, n := range r.periodic {
		if n == 0 {
			continue
		}
		places[p] = make([]place, len(sorted))
		rank, prev := 0, 0
		for i, c := range sorted {
			k := periods[p].key(c.Time.In(loc))
			if i == 0 || k != prev {
				rank, prev = rank+1, k
				places[p][i] = place{rank, true}
			} else {
				places[p][i] = place{rank, false}
			}
		}
	}
	out := make(map[string][]string, len(pruned))
	for _, c := range pruned {
		i, ok := index[c.ID]
		if !ok {
			continue
		}
		var why []string
		if r.last > 0 {
			why = append(why, fmt.Sprintf("keepLast %d: %d newer backups", r.last, i))
		}
		for p, n := range r.periodic {
			if n == 0 {
				continue
			}
			rule, label := periodRules[p], periods[p].label(c.Time.In(loc))
			if pl := places[p][i]; !pl.newest {
				why = append(why, fmt.Sprintf("%s %d: not the newest backup of %s", rule.field, n, label))
			} else {
				why = append(why, fmt.Sprintf("%s %d: %s is not among the %d most recent %s with a backup", rule.field, n, label, n, rule.plural))
			}
		}
		if !cutoff.IsZero() {
			why = append(why, fmt.Sprintf("maxAge %s: taken at or before %s", r.maxAgeText, cutoff.In(loc).Format(time.RFC3339)))
		}
		if r.minKeep > 1 {
			why = append(why, fmt.Sprintf("minKeep %d: met by newer backups", r.minKeep))
		}
		if why == nil {
			// Only keepLast 0 and zero counts: a policy that keeps nothing but the protections.
			why = []string{"no rule keeps it"}
		}
		out[c.ID] = why
	}
	return out
}

// keepNeeded keeps, for every kept backup, the backups it needs, and theirs.
func keepNeeded(sorted []Candidate, reasons [][]string) {
	index := make(map[string]int, len(sorted))
	for i, c := range sorted {
		index[c.ID] = i
	}
	var work []int
	for i := range sorted {
		if len(reasons[i]) > 0 {
			work = append(work, i)
		}
	}
	for len(work) > 0 {
		i := work[0]
		work = work[1:]
		p, ok := index[sorted[i].Needs]
		if !ok || p == i {
			continue
		}
		if len(reasons[p]) == 0 {
			work = append(work, p) // newly kept: what it needs is kept too
		}
		why := "needed by " + sorted[i].ID
		if !slices.Contains(reasons[p], why) {
			reasons[p] = append(reasons[p], why)
		}
	}
}
