package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErasureRequestSpec names a data subject to erase from the tenant's live database and from every
// later restore of its backups. It cannot change once made: the request is recorded as it was
// carried out.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an erasure request cannot be changed; make a new one"
type ErasureRequestSpec struct {
	// Subject is the data subject's id, passed to the function as its one argument (bound, never
	// part of the SQL text): UTF-8 text without control characters (C0, DEL or C1), at most 1024
	// bytes (MaxLength counts characters; a rule counts the bytes, as the agent does).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\\\x00-\\\\x1f\\\\x7f-\\\\x9f]')",message="subject must not contain control characters"
	// +kubebuilder:validation:XValidation:rule="size(bytes(self)) <= 1024",message="subject must be at most 1024 bytes (UTF-8)"
	// +required
	Subject string `json:"subject"`

	// Function is the application's erasure function, schema-qualified (app.forget): the
	// operator runs SELECT <function>($1) with the subject, as the application's role. It must
	// be idempotent: every restore of an earlier backup replays it.
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$`
	// +required
	Function string `json:"function"`
}

// Phases of an ErasureRequest.
const (
	ErasurePhasePending   = "Pending"
	ErasurePhaseRunning   = "Running"
	ErasurePhaseSucceeded = "Succeeded"
	ErasurePhaseFailed    = "Failed"
)

// ErasureRequestStatus is what became of the request.
type ErasureRequestStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is Pending, Running, Succeeded or Failed.
	// +optional
	Phase string `json:"phase,omitempty"`

	// Conditions: Ready tells whether the request was carried out and recorded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Job is the Job, in the operator's namespace, that carries the request out.
	// +optional
	Job string `json:"job,omitempty"`

	// CompletionTime is when the request was carried out and recorded in the ledger.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// LedgerEntry is the key of the request's entry in the tenant's erasure ledger, in the first
	// storage location (the same entry is in every location of the tenant's schedules).
	// +optional
	LedgerEntry string `json:"ledgerEntry,omitempty"`
}

// ErasureRequest asks for a data subject to be erased from the tenant's database, in a way that
// survives every restore of its backups (see docs/erasure.md). It lives in the tenant's
// namespace; whoever may create it there may erase.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=er,categories=tenancy
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.function`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Completed",type=date,JSONPath=`.status.completionTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ErasureRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   ErasureRequestSpec   `json:"spec"`
	Status ErasureRequestStatus `json:"status,omitempty"`
}

// ErasureRequestList is a list of ErasureRequests.
// +kubebuilder:object:root=true
type ErasureRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ErasureRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ErasureRequest{}, &ErasureRequestList{})
}
