package v1alpha1

// LocalObjectReference names another cluster-scoped object of this API group.
type LocalObjectReference struct {
	// Name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// SecretReference names a Secret in the operator's namespace. Cluster-scoped policies keep their
// credentials there so that tenant administrators can never read them.
type SecretReference struct {
	// Name of the Secret in the operator's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret in the operator's namespace.
type SecretKeyReference struct {
	// Name of the Secret in the operator's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=identity
	// +optional
	Key string `json:"key,omitempty"`
}
