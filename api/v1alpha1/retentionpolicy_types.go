package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RetentionPolicySpec decides which backups are kept. A backup is kept when any rule keeps it,
// the newest successful and the newest verified backup are always kept, and never fewer than
// minKeep remain.
// +kubebuilder:validation:XValidation:rule="has(self.keepLast) || has(self.keepDaily) || has(self.keepWeekly) || has(self.keepMonthly) || has(self.keepYearly) || has(self.maxAge)",message="spec must set at least one rule: keepLast, keepDaily, keepWeekly, keepMonthly, keepYearly or maxAge"
type RetentionPolicySpec struct {
	// KeepLast keeps the newest N backups.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	KeepLast *int32 `json:"keepLast,omitempty"`

	// KeepDaily keeps the newest backup of each of the last N days that have one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	KeepDaily *int32 `json:"keepDaily,omitempty"`

	// KeepWeekly keeps the newest backup of each of the last N ISO weeks that have one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	KeepWeekly *int32 `json:"keepWeekly,omitempty"`

	// KeepMonthly keeps the newest backup of each of the last N months that have one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	KeepMonthly *int32 `json:"keepMonthly,omitempty"`

	// KeepYearly keeps the newest backup of each of the last N years that have one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +optional
	KeepYearly *int32 `json:"keepYearly,omitempty"`

	// MaxAge keeps every backup younger than this, e.g. 5d, 2mo or 1y.
	// +kubebuilder:validation:MaxLength=16
	// +optional
	MaxAge string `json:"maxAge,omitempty"`

	// MinKeep is the fewest backups per schedule that pruning leaves, whatever the rules say.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=1
	// +optional
	MinKeep *int32 `json:"minKeep,omitempty"`
}

// RetentionPolicyStatus is the observed state of a RetentionPolicy.
type RetentionPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready tells whether the policy is valid.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Rules summarizes the rules for people, e.g. "last=5 daily=60 yearly=1 minKeep=1".
	// +optional
	Rules string `json:"rules,omitempty"`

	// Tenants is how many Tenants reference this policy.
	// +optional
	Tenants int32 `json:"tenants,omitempty"`
}

// RetentionPolicy decides which backups are kept, shared by tenants.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=rp,categories=tenancy
// +kubebuilder:printcolumn:name="Rules",type=string,JSONPath=`.status.rules`
// +kubebuilder:printcolumn:name="Tenants",type=integer,JSONPath=`.status.tenants`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RetentionPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   RetentionPolicySpec   `json:"spec"`
	Status RetentionPolicyStatus `json:"status,omitempty"`
}

// RetentionPolicyList is a list of RetentionPolicies.
// +kubebuilder:object:root=true
type RetentionPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RetentionPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&RetentionPolicy{}, &RetentionPolicyList{})
}
