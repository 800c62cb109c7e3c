package controllers

import (
	"context"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// TestErasureJobWaitsForThePolicysSigningKey: a request reconciled before the BackupPolicy
// controller has published the policy's signing key waits for it. Its Job is made once and never
// changed, so a Job made then would append an unsigned ledger entry, which every restore refuses
// (or, with --ignore-ledger, skips: the erasure undone).
func TestErasureJobWaitsForThePolicysSigningKey(t *testing.T) {
	ctx := context.Background()
	const operatorNS = "tenant-operator-system"
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "0b7e2c61-5a3f-4d4e-9d1a-2f6c0e8b9a10"},
		Spec: v1alpha1.TenantSpec{Hostnames: []string{"acme.example.com"}, BackupPolicyRef: &v1alpha1.LocalObjectReference{Name: "nightly"},
			Database: v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}}}}
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: v1alpha1.BackupPolicySpec{Schedules: []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "@daily",
			Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: "s3.example.com", Bucket: "b", Region: "r",
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3"}}}}}}}
	er := &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "forget-4711", Namespace: builders.NamespaceName(tenant), UID: "5d1e9a3c-7b2f-4c8e-a6d0-3f9b1c2e4a57"},
		Spec: v1alpha1.ErasureRequestSpec{Subject: "4711", Function: "app.forget"}}
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: builders.NamespaceName(tenant), Name: builders.DatabaseSecretName(tenant)},
		Data: map[string][]byte{builders.SecretKeyPassword: []byte("app password")}}
	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: builders.DataKeySecretName(tenant)}}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(tenant, policy, er, creds, key).
		WithStatusSubresource(&v1alpha1.ErasureRequest{}, &v1alpha1.BackupPolicy{}).WithInterceptorFuncs(applyAsUpsert()).Build()
	r := &ErasureRequestReconciler{Client: c, Options: Options{Options: builders.Options{OperatorNamespace: operatorNS}}}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: er.Namespace, Name: er.Name}}
	jobKey := client.ObjectKey{Namespace: operatorNS, Name: builders.ErasureJobName(tenant, er)}

	res, err := r.Reconcile(ctx, req)
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("reconcile without the signing key: %+v, %v; want a retry", res, err)
	}
	if err := c.Get(ctx, req.NamespacedName, er); err != nil {
		t.Fatal(err)
	}
	if er.Status.Phase != v1alpha1.ErasurePhasePending || len(er.Status.Conditions) != 1 || er.Status.Conditions[0].Reason != v1alpha1.ReasonRequestPending {
		t.Fatalf("status %+v: want Pending", er.Status)
	}
	if err := c.Get(ctx, jobKey, &batchv1.Job{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Job was made before the policy's signing key was published (%v)", err)
	}

	policy.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: "ed25519:AAAA"}
	if err := c.Status().Update(ctx, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{}
	if err := c.Get(ctx, jobKey, job); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(job.Spec.Template.Spec.Containers[0].Args, "--signing-key-file") {
		t.Errorf("job args %q: want --signing-key-file", job.Spec.Template.Spec.Containers[0].Args)
	}
}
