package controllers

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// patchStatus writes the status of obj when it differs from the status of before, as a merge
// patch on the status subresource. An unchanged status means no write at all, which keeps an
// idle cluster free of API traffic.
func patchStatus[T client.Object](ctx context.Context, c client.Client, before, obj T, status func(T) any) error {
	if apiequality.Semantic.DeepEqual(status(before), status(obj)) {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(before), FieldOwner); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: there is no status left to tell
		}
		return fmt.Errorf("patch status of %s: %w", obj.GetName(), err)
	}
	return nil
}

// setPolicyReady sets Ready on a policy: True for ReasonSucceeded, False for any other reason.
// A policy that is not ready needs its owner (a spec to fix, a Secret to create), so it is also
// Stalled, which kstatus and GitOps tools read as Failed. It is the policies' one setter.
func setPolicyReady(conditions *[]metav1.Condition, generation int64, reason, message string) {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: reason, Message: tenantstatus.Bound(message, tenantstatus.MaxMessage), ObservedGeneration: generation}
	if reason == v1alpha1.ReasonSucceeded {
		meta.SetStatusCondition(conditions, c)
		meta.RemoveStatusCondition(conditions, v1alpha1.ConditionStalled)
		return
	}
	c.Status = metav1.ConditionFalse
	meta.SetStatusCondition(conditions, c)
	c.Type, c.Status = v1alpha1.ConditionStalled, metav1.ConditionTrue
	meta.SetStatusCondition(conditions, c)
}
