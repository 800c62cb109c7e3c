package webhook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/webhook"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

var (
	k8s client.Client
	env *controlplane.Env
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = controlplane.Start(controlplane.Options{Webhooks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	opts := env.ManagerOptions()
	opts.Scheme = scheme
	mgr, err := ctrl.NewManager(env.Config, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL: create manager:", err)
		return 1
	}
	if err := webhook.SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, "FATAL: set up webhooks:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = mgr.Start(ctx) }()
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	if err := env.WaitForWebhook(waitCtx, mgr); err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL: create client:", err)
		return 1
	}
	return m.Run()
}

func decode(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("test manifest is not YAML: %v\n%s", err, manifest)
	}
	return u
}

// TestSamplesAreAccepted creates every sample with a server-side dry run.
func TestSamplesAreAccepted(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "tenancy_*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("expected at least 4 samples, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := decode(t, string(data))
		if ns := obj.GetNamespace(); ns != "" {
			// A namespaced sample (an ErasureRequest) lives in its tenant's namespace, which the
			// operator makes; here it is made for the dry run.
			err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		if err := k8s.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Errorf("sample %s rejected: %v", filepath.Base(f), err)
		}
	}
}

// TestWideCIDRsAndRoutesAreAccepted: what the firewall can make safe passes admission. 0.0.0.0/0
// and ::/0 are accepted in both directions (the builder excepts the cluster's ranges from them),
// as are public ranges, exposed Service types and both kinds of route.
func TestWideCIDRsAndRoutesAreAccepted(t *testing.T) {
	for name, extra := range map[string]string{
		"the world":     "firewall:\n  allowedCIDRs: [0.0.0.0/0, \"::/0\"]\n  egress:\n  - toCIDRs: [0.0.0.0/0, \"::/0\"]\n",
		"public ranges": "firewall:\n  allowedCIDRs: [203.0.113.0/24]\n  egress:\n  - toCIDRs: [198.51.100.0/24]\n    ports: [443]\n",
		"service types": "firewall:\n  allowedServiceTypes: [LoadBalancer, NodePort]\n",
		"ingress route": "route:\n  serviceName: frontend\n  port: 8080\n",
		"gateway route": "route:\n  kind: HTTPRoute\n  gatewayRef: {name: public, namespace: gateways, sectionName: https}\n",
		"no route":      "route:\n  kind: None\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := k8s.Create(context.Background(), decode(t, validTenant("accepted", extra)), client.DryRunAll); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestBadManifestsAreRejected proves each rule at admission: the API server with our CRDs' OpenAPI
// and CEL rules, and our webhook, refuses each manifest with a message naming the field.
func TestBadManifestsAreRejected(t *testing.T) {
	if len(badManifests) < 40 {
		t.Fatalf("the table has %d bad manifests; keep at least 40", len(badManifests))
	}
	for _, tc := range badManifests {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, tc.manifest)
			err := k8s.Create(context.Background(), obj, client.DryRunAll)
			if err == nil {
				t.Fatalf("accepted; want rejection with %q", tc.want)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !apierrors.IsForbidden(err) {
				t.Fatalf("rejected for another reason than validation: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("message does not say %q:\n%v", tc.want, err)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Fatalf("message echoes a private key: %v", err)
			}
		})
	}
}

// TestWebhookNeverBlocksDeletion turns the webhook off (pointed at a closed port with failure
// policy Fail, as when the operator is down) and shows that creating is refused but deleting a
// Tenant and removing its finalizer still go through.
func TestWebhookNeverBlocksDeletion(t *testing.T) {
	ctx := context.Background()
	tenant := decode(t, validTenant("deleteme", ""))
	tenant.SetFinalizers([]string{v1alpha1.TenantFinalizer})
	if err := k8s.Create(ctx, tenant); err != nil {
		t.Fatalf("create tenant: %v", err)
	}

	configs := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	if err := k8s.List(ctx, configs); err != nil || len(configs.Items) == 0 {
		t.Fatalf("list webhook configurations: %v (%d)", err, len(configs.Items))
	}
	restore := configs.Items[0].DeepCopy()
	broken := configs.Items[0].DeepCopy()
	for i := range broken.Webhooks {
		broken.Webhooks[i].ClientConfig.URL = ptr.To("https://127.0.0.1:1/down")
		broken.Webhooks[i].FailurePolicy = ptr.To(admissionregistrationv1.Fail)
	}
	if err := k8s.Update(ctx, broken); err != nil {
		t.Fatalf("break webhook: %v", err)
	}
	t.Cleanup(func() {
		current := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(restore), current); err == nil {
			restore.ResourceVersion = current.ResourceVersion
			_ = k8s.Update(ctx, restore)
		}
	})

	// The API server needs a moment to see the new configuration.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := k8s.Create(ctx, decode(t, validTenant("refused-while-down", "")), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "failed calling webhook") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create with the webhook down: got %v, want a webhook call failure", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := k8s.Delete(ctx, tenant); err != nil {
		t.Fatalf("delete tenant with the webhook down: %v", err)
	}
	current := &unstructured.Unstructured{}
	current.SetGroupVersionKind(tenant.GroupVersionKind())
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), current); err != nil {
		t.Fatalf("get tenant being deleted: %v", err)
	}
	if current.GetDeletionTimestamp() == nil {
		t.Fatal("tenant has no deletion timestamp after delete")
	}
	current.SetFinalizers(nil)
	if err := k8s.Update(ctx, current); err != nil {
		t.Fatalf("remove finalizer with the webhook down: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), current); !apierrors.IsNotFound(err) {
		t.Fatalf("tenant still exists after its finalizer was removed: %v", err)
	}
}
