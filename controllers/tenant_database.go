package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;patch

// reconcileDatabase runs the tenant's PostgreSQL: credentials generated once, TLS from
// cert-manager, the StatefulSet and its services. It sets DatabaseReady and status.database.
func (r *TenantReconciler) reconcileDatabase(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	o := tenantstatus.DatabaseObservation{Blocked: s.namespaceBlocked, Version: builders.DatabaseVersion(t), Host: builders.DatabaseHost(t)}
	defer func() { tenantstatus.SetDatabaseReady(t, o) }()
	if o.Blocked {
		return ctrl.Result{}, nil
	}
	// The credentials, configuration, services and server certificate together; the
	// StatefulSet, which uses them, after.
	opts := r.builderOptions()
	tasks := append(r.applyTasks([]ownedObject{
		{"config map", builders.DatabaseConfigName(t), builders.DatabaseConfigMap(t)},
		{"service", builders.DatabaseName(t), builders.DatabaseService(t)},
		{"service", builders.DatabaseHeadlessName(t), builders.DatabaseHeadlessService(t)},
	}), func(ctx context.Context) error {
		return r.ensureDatabaseSecrets(ctx, t, s.namespaceNew)
	}, func(ctx context.Context) error {
		return r.ensureProbeCredentials(ctx, t)
	}, func(ctx context.Context) error {
		return r.applyDatabaseCA(ctx, t)
	}, func(ctx context.Context) error {
		err := r.apply(ctx, ownedObject{"certificate", builders.DatabaseCertificateName(t), builders.DatabaseCertificate(t, opts)})
		if meta.IsNoMatchError(err) {
			// Without cert-manager there is no server certificate; the Certificate step says the
			// same in CertificateReady.
			o.CertManagerMissing = true
			return nil
		}
		return err
	})
	if o.Err = firstError(concurrently(ctx, tasks...)); o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	if s.walArchive, o.Err = r.walArchive(ctx, s); o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	sts := &appsv1.StatefulSet{}
	if o.Err = r.applyAndRead(ctx, ownedObject{"statefulset", builders.DatabaseName(t), builders.DatabaseStatefulSetArchiving(t, s.walArchive, opts)}, sts); o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	ready := sts.Status.ReadyReplicas
	t.Status.Database = &v1alpha1.DatabaseStatus{Version: o.Version, Host: o.Host, SecretName: builders.DatabaseSecretName(t), ReadyReplicas: ready}
	o.Ready = sts.Status.ObservedGeneration >= sts.Generation && ready >= 1 && sts.Status.UpdatedReplicas >= 1
	s.databaseReady = o.Ready
	if !o.Ready && !o.CertManagerMissing {
		o.WaitReason, o.WaitMessage, o.Err = r.databaseWaitReason(ctx, t, sts.Status.Replicas, ready)
	}
	// No timed look again: what the wait depends on (the StatefulSet's status, the claim, the
	// quota's usage) is watched, and its change brings the tenant back. A thousand waiting
	// tenants polled every few seconds would load the API server for nothing.
	return ctrl.Result{}, o.Err
}

// databaseWaitReason tells what the database is waiting for, looking where a person would: the
// volume claim, the quota and the pod.
func (r *TenantReconciler) databaseWaitReason(ctx context.Context, t *v1alpha1.Tenant, replicas, ready int32) (string, string, error) {
	ns := builders.NamespaceName(t)
	if replicas == 0 {
		if msg := r.quotaExhausted(ctx, ns); msg != "" {
			return v1alpha1.ReasonQuotaExceeded, "The namespace quota leaves no room for the database pod: " + msg + "; raise spec.quota", nil
		}
	}
	pvc := &corev1.PersistentVolumeClaim{}
	pvcName := builders.DatabaseVolumeClaimName(t)
	switch err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: pvcName}, pvc); {
	case err == nil && pvc.Status.Phase == corev1.ClaimPending:
		return v1alpha1.ReasonPVCPending, fmt.Sprintf("Volume claim %s is pending: no volume bound yet; check the storage class", pvcName), nil
	case err != nil && !apierrors.IsNotFound(err):
		return "", "", fmt.Errorf("get volume claim %s: %w", pvcName, err)
	}
	if replicas == 0 {
		return v1alpha1.ReasonProgressing, "Waiting for the database pod to be created", nil
	}
	return v1alpha1.ReasonPodNotReady, fmt.Sprintf("Database pod not ready yet (%d/1)", ready), nil
}

// databaseQuotaResources are the quota resources a database pod and its volume claim use.
var databaseQuotaResources = map[corev1.ResourceName]bool{
	corev1.ResourcePods: true, corev1.ResourceCPU: true, corev1.ResourceMemory: true,
	corev1.ResourceRequestsCPU: true, corev1.ResourceRequestsMemory: true,
	corev1.ResourceLimitsCPU: true, corev1.ResourceLimitsMemory: true,
	corev1.ResourceRequestsStorage: true, corev1.ResourcePersistentVolumeClaims: true,
	corev1.ResourceRequestsEphemeralStorage: true, corev1.ResourceLimitsEphemeralStorage: true,
	"count/statefulsets.apps": true, "count/pods": true, "count/persistentvolumeclaims": true,
}

// quotaExhausted names the resources whose quota is used up in the namespace.
func (r *TenantReconciler) quotaExhausted(ctx context.Context, ns string) string {
	quota := &corev1.ResourceQuota{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: builders.QuotaName}, quota); err != nil {
		return ""
	}
	var full []string
	for name, hard := range quota.Status.Hard {
		// Only what the database pod and its volume consume: a quota that forbids, say, load
		// balancers outright (0/0) is not what keeps the database from starting.
		if !databaseQuotaResources[name] {
			continue
		}
		if used, ok := quota.Status.Used[name]; ok && used.Cmp(hard) >= 0 {
			full = append(full, fmt.Sprintf("%s %s/%s", name, used.String(), hard.String()))
		}
	}
	return strings.Join(full, ", ")
}

// ensureDatabaseSecrets creates the database credentials and the backup role's password once.
// An existing Secret is never regenerated: the data on the volume was initialized with that
// password. In a namespace this pass created there are none to look for.
func (r *TenantReconciler) ensureDatabaseSecrets(ctx context.Context, t *v1alpha1.Tenant, namespaceNew bool) error {
	secrets := []struct {
		name, what string
		build      func(password string) runtime.ApplyConfiguration
	}{
		{builders.DatabaseSecretName(t), "database credentials", func(p string) runtime.ApplyConfiguration { return builders.DatabaseSecret(t, p) }},
		{builders.DatabaseBackupSecretName(t), "the backup role's password", func(p string) runtime.ApplyConfiguration { return builders.DatabaseBackupSecret(t, p) }},
	}
	created := make([]bool, len(secrets))
	tasks := make([]func(context.Context) error, len(secrets))
	for i, s := range secrets {
		tasks[i] = func(ctx context.Context) (err error) {
			created[i], err = r.ensureGeneratedSecret(ctx, t, s.name, namespaceNew, s.build)
			return err
		}
	}
	errs := concurrently(ctx, tasks...)
	var generated []string
	for i, s := range secrets {
		if created[i] {
			generated = append(generated, fmt.Sprintf("%s in Secret %s", s.what, s.name))
		}
	}
	// One event for what a new tenant gets at once: every event is a write.
	if len(generated) > 0 {
		r.event(t, corev1.EventTypeNormal, "CredentialsGenerated", "Generated "+strings.Join(generated, " and "))
	}
	return firstError(errs)
}

// ensureGeneratedSecret creates a Secret in the tenant namespace holding a new password, unless
// it exists, and says whether it created one. The write is a create, never an apply: another
// process (a replica or shard, while shards are added or removed) may have created the Secret
// since we looked, and its password is the one the database was, or will be, initialized with.
func (r *TenantReconciler) ensureGeneratedSecret(ctx context.Context, t *v1alpha1.Tenant, name string, namespaceNew bool, build func(password string) runtime.ApplyConfiguration) (bool, error) {
	if !namespaceNew {
		exists, err := r.secretExists(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: name})
		if err != nil || exists {
			return false, err
		}
	}
	password, err := generatePassword()
	if err != nil {
		return false, err
	}
	created, err := r.applier.Create(ctx, build(password))
	if err != nil {
		return false, fmt.Errorf("create secret %s: %w", name, err)
	}
	return created, nil
}

// secretExists looks in the cache, which holds the Secrets we created, and confirms a miss with the
// API server: a password is generated only when there is none, so an existing one is never
// overwritten.
func (r *TenantReconciler) secretExists(ctx context.Context, key types.NamespacedName) (bool, error) {
	if err := r.Get(ctx, key, &corev1.Secret{}); err == nil {
		return true, nil
	}
	existing := &metav1.PartialObjectMetadata{}
	existing.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	switch err := r.APIReader.Get(ctx, key, existing); {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("get secret %s: %w", key.Name, err)
	}
}

// applyDatabaseCA publishes the database's CA certificate, once cert-manager has issued the server
// certificate, in a ConfigMap of its own: clients verify the server with it (the credentials'
// URI expects it at builders.DatabaseCAMountPath) without mounting the Secret that also holds the
// server's private key. The TLS Secret's watch brings the tenant back when it appears or renews.
func (r *TenantReconciler) applyDatabaseCA(ctx context.Context, t *v1alpha1.Tenant) error {
	secret := &corev1.Secret{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: builders.DatabaseTLSSecretName(t)}, secret); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get secret %s: %w", builders.DatabaseTLSSecretName(t), err)
	}
	ca := string(secret.Data[builders.DatabaseCAKey])
	if ca == "" {
		return nil
	}
	return r.apply(ctx, ownedObject{"config map", builders.DatabaseCAConfigMapName(t), builders.DatabaseCAConfigMap(t, ca)})
}

// ensureProbeCredentials gives the tenant's login-only probe role a password once: the password
// stays in the operator's namespace, which tenant users cannot read, and only its SCRAM verifier
// goes to the tenant's namespace, for the database pod to set. Neither is ever regenerated: a new
// salt would change the verifier, and the probes' login with it.
func (r *TenantReconciler) ensureProbeCredentials(ctx context.Context, t *v1alpha1.Tenant) error {
	key := types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.ProbeSecretName(t)}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, secret)
	}
	verifier := string(secret.Data[builders.ProbeSecretKeyVerifier])
	switch {
	case apierrors.IsNotFound(err) || (err == nil && verifier == ""):
		password, perr := generatePassword()
		salt := make([]byte, 16)
		if _, serr := rand.Read(salt); perr != nil || serr != nil {
			return fmt.Errorf("generate the probe role's password: %w", errors.Join(perr, serr))
		}
		if verifier, err = builders.ScramSHA256Verifier(password, salt); err != nil {
			return err
		}
		if err := r.apply(ctx, ownedObject{"secret", key.Name, builders.ProbeSecret(t, password, verifier, r.builderOptions())}); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("get secret %s: %w", key.Name, err)
	}
	return r.apply(ctx, ownedObject{"secret", builders.DatabaseProbeSecretName(t), builders.DatabaseProbeSecret(t, verifier)})
}

// generatePassword returns 32 random bytes from crypto/rand, URL-safe base64 encoded.
func generatePassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate database password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// walArchive is the WAL archiving the tenant's BackupPolicy asks of its database. While the
// tenant names a policy that cannot be read (missing, invalid), the database keeps the archiving it
// has: switching it off would restart the database and drop its receivers' slots, and with them
// the WAL not stored yet.
func (r *TenantReconciler) walArchive(ctx context.Context, s *tenantScope) (builders.WALArchive, error) {
	t := s.tenant
	switch {
	case t.Spec.BackupPolicyRef == nil:
		return builders.WALArchive{}, nil
	case s.backupPolicy != nil:
		return builders.WALArchiveOf(s.backupPolicy), nil
	}
	current := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: builders.DatabaseName(t)}, current); {
	case apierrors.IsNotFound(err):
		return builders.WALArchive{}, nil
	case err != nil:
		return builders.WALArchive{}, fmt.Errorf("get statefulset %s: %w", builders.DatabaseName(t), err)
	}
	return builders.WALArchiveInUse(current), nil
}
