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

// setCondition sets a condition with the object's generation; meta.SetStatusCondition keeps
// lastTransitionTime unless the status flips, so re-setting the same condition writes nothing.
func setCondition(conditions *[]metav1.Condition, generation int64, conditionType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: conditionType, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// readyCondition sets Ready on a policy: True for ReasonSucceeded, False for any other reason.
// A policy that is not ready needs its owner (a spec to fix, a Secret to create), so it is also
// Stalled, which kstatus and GitOps tools read as Failed.
func readyCondition(conditions *[]metav1.Condition, generation int64, reason, message string) {
	if reason == v1alpha1.ReasonSucceeded {
		setCondition(conditions, generation, v1alpha1.ConditionReady, metav1.ConditionTrue, reason, message)
		meta.RemoveStatusCondition(conditions, v1alpha1.ConditionStalled)
		return
	}
	setCondition(conditions, generation, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	setCondition(conditions, generation, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
}
