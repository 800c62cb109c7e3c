// Package v1alpha1 contains the tenancy.tenantops.io/v1alpha1 API: Tenant, BackupPolicy and
// RetentionPolicy, all cluster-scoped.
//
// +kubebuilder:object:generate=true
// +groupName=tenancy.tenantops.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "tenancy.tenantops.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
