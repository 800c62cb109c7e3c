package main

import "sigs.k8s.io/controller-runtime/pkg/metrics/filters"

// filtersForSecureMetrics authenticates and authorizes metrics scrapes with the API server
// (TokenReview and SubjectAccessReview), so that only Prometheus' service account reads them.
var filtersForSecureMetrics = filters.WithAuthenticationAndAuthorization

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
