// Package evidence gathers, for one tenant, every promise the operator makes to the customer with
// its setting (what the Tenant and its policies ask for), its observed state (what the cluster and
// the backup storage hold) and the proof (which object or storage listing says so), and renders it
// as JSON for machines and as Markdown or one HTML page for an auditor who does not know
// Kubernetes.
//
// The report holds names, IDs, sizes, checksums and key fingerprints, never key material or
// credentials; a data subject of an erasure request appears as a fingerprint only.
//
// docs/evidence.md describes the report; docs/evidence.schema.json is its JSON Schema.
package evidence

import "time"

// APIVersion names the report's format. It changes when a field changes meaning or goes away;
// new fields and new sections keep it.
const APIVersion = "evidence.tenantops.io/v1"

// Kind is the report's kind, beside APIVersion.
const Kind = "TenantEvidence"

// Status says whether a promise is kept, as far as the evidence shows.
type Status string

const (
	// StatusMet: the setting asks for it and what was observed shows it holds.
	StatusMet Status = "met"
	// StatusNotMet: what was observed shows it does not hold, or nothing asks for it.
	StatusNotMet Status = "not-met"
	// StatusUnknown: the evidence could not be read or does not decide (not measured yet,
	// storage unreachable, permission refused).
	StatusUnknown Status = "unknown"
)

// Section IDs, in the order of the report.
const (
	SectionIdentity        = "identity"
	SectionEnvironment     = "environment"
	SectionAccess          = "access"
	SectionDatabase        = "database"
	SectionFirewall        = "firewall"
	SectionCertificate     = "certificate"
	SectionBackups         = "backups"
	SectionEncryption      = "encryption"
	SectionVerification    = "verification"
	SectionRetention       = "retention"
	SectionRegions         = "regions"
	SectionPointInTime     = "pointInTime"
	SectionUptime          = "uptime"
	SectionErasureRequests = "erasureRequests"
	SectionErasureRecords  = "erasureRecords"
)

// SectionIDs are every section's ID in report order; every report has each of them once.
var SectionIDs = []string{SectionIdentity, SectionEnvironment, SectionAccess, SectionDatabase, SectionFirewall,
	SectionCertificate, SectionBackups, SectionEncryption, SectionVerification, SectionRetention, SectionRegions,
	SectionPointInTime, SectionUptime, SectionErasureRequests, SectionErasureRecords}

// Report is the evidence for one tenant at one moment.
type Report struct {
	APIVersion  string    `json:"apiVersion"`
	Kind        string    `json:"kind"`
	GeneratedAt time.Time `json:"generatedAt"`
	Tenant      Tenant    `json:"tenant"`
	// Summary counts the sections by status.
	Summary  Summary   `json:"summary"`
	Sections []Section `json:"sections"`
}

// Tenant identifies the customer the report is about.
type Tenant struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	// UID is the Tenant object's unique ID; a later Tenant of the same name is another customer.
	UID string `json:"uid,omitempty"`
	// CreatedAt is when the Tenant was created; absent when the Tenant no longer exists.
	CreatedAt *time.Time `json:"createdAt,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	// Exists is false when only records of a deleted Tenant were found.
	Exists bool `json:"exists"`
}

// Summary counts sections by status.
type Summary struct {
	Met     int `json:"met"`
	NotMet  int `json:"notMet"`
	Unknown int `json:"unknown"`
}

// Section is one promise.
type Section struct {
	// ID is one of the Section... constants.
	ID string `json:"id"`
	// Title and Promise are plain words: what the customer was promised.
	Title   string `json:"title"`
	Promise string `json:"promise"`
	Status  Status `json:"status"`
	// Reason says, in plain words, why the status is what it is.
	Reason string `json:"reason"`
	// Setting is what the Tenant and its policies ask for.
	Setting []Fact `json:"setting"`
	// Observed is what the cluster and the storage hold.
	Observed []Fact `json:"observed"`
	// Tables are observed records with several rows, such as backups or network rules.
	Tables []*Table `json:"tables,omitempty"`
	// Proof names where each fact was read.
	Proof []Source `json:"proof"`
}

// Fact is one named value. Key is stable for machines; Label is for people.
type Fact struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	Value string `json:"value"`
}

// Table is a list of records with the same columns.
type Table struct {
	Key     string   `json:"key"`
	Title   string   `json:"title"`
	Columns []Column `json:"columns"`
	// Rows map column keys to values.
	Rows []map[string]string `json:"rows"`
}

// Column of a Table.
type Column struct {
	Key   string `json:"key"`
	Label string `json:"label"`
}

// Source is where evidence was read: a Kubernetes object (kind, namespace, name, and the field
// read) or a storage location (kind "Storage" and its location, without credentials).
type Source struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Field     string `json:"field,omitempty"`
	Location  string `json:"location,omitempty"`
}

// Section returns the section of the given ID, or nil.
func (r *Report) Section(id string) *Section {
	for i := range r.Sections {
		if r.Sections[i].ID == id {
			return &r.Sections[i]
		}
	}
	return nil
}

// Fact returns the value of the fact of the given key among setting and observed, and whether
// there is one.
func (s *Section) Fact(key string) (string, bool) {
	for _, list := range [][]Fact{s.Setting, s.Observed} {
		for _, f := range list {
			if f.Key == key {
				return f.Value, true
			}
		}
	}
	return "", false
}

// Table returns the table of the given key, or nil.
func (s *Section) Table(key string) *Table {
	for _, t := range s.Tables {
		if t.Key == key {
			return t
		}
	}
	return nil
}

func (r *Report) summarize() {
	r.Summary = Summary{}
	for _, s := range r.Sections {
		switch s.Status {
		case StatusMet:
			r.Summary.Met++
		case StatusNotMet:
			r.Summary.NotMet++
		default:
			r.Summary.Unknown++
		}
	}
}
