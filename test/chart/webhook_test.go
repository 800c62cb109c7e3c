package chart

import (
	"slices"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestWebhookWiring follows the webhook from the API server to the operator for every value set:
// each webhook controller-gen generated is there, points at the chart's Service, whose port
// reaches the container's webhook port; the CA comes from cert-manager's cainjector (the
// Certificate it names exists, covers the Service's DNS name and fills the Secret the Deployment
// mounts) or from the caBundle value (with the existing Secret mounted instead).
func TestWebhookWiring(t *testing.T) {
	generated := typedFile[admissionregistrationv1.ValidatingWebhookConfiguration](t, "config/webhook/manifests.yaml")
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs)
			config := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, one(t, objs, "ValidatingWebhookConfiguration"))
			deployment := typed[appsv1.Deployment](t, one(t, objs, "Deployment"))
			container := deployment.Spec.Template.Spec.Containers[0]

			if len(config.Webhooks) != len(generated.Webhooks) {
				t.Fatalf("%d webhooks, controller-gen generated %d", len(config.Webhooks), len(generated.Webhooks))
			}
			var services []*corev1.Service
			for _, obj := range only(objs, "Service") {
				services = append(services, typed[corev1.Service](t, obj))
			}
			var serviceDNS string
			for i, w := range config.Webhooks {
				want := generated.Webhooks[i]
				ref := w.ClientConfig.Service
				if ref == nil || ref.Path == nil || want.ClientConfig.Service.Path == nil || *ref.Path != *want.ClientConfig.Service.Path {
					t.Fatalf("webhook %s: clientConfig %+v, want the generated path", w.Name, w.ClientConfig)
				}
				// Everything but the client configuration and timeout is as generated.
				w.ClientConfig, want.ClientConfig = admissionregistrationv1.WebhookClientConfig{}, admissionregistrationv1.WebhookClientConfig{}
				w.TimeoutSeconds, want.TimeoutSeconds = nil, nil
				if !equalJSON(t, w, want) {
					t.Errorf("webhook %s differs from config/webhook/manifests.yaml", w.Name)
				}
				if ref.Namespace != releaseNamespace {
					t.Errorf("webhook %s: service namespace %q", w.Name, ref.Namespace)
				}
				i := slices.IndexFunc(services, func(s *corev1.Service) bool { return s.Name == ref.Name })
				if i < 0 {
					t.Fatalf("webhook %s points at Service %q, which the chart does not create", w.Name, ref.Name)
				}
				svc := services[i]
				port := int32(443)
				if ref.Port != nil {
					port = *ref.Port
				}
				if !reachesContainerPort(svc, port, container) {
					t.Errorf("Service %s port %d does not reach a container port of the operator", svc.Name, port)
				}
				if !selects(svc.Spec.Selector, deployment.Spec.Template.Labels) {
					t.Errorf("Service %s does not select the operator's pods", svc.Name)
				}
				serviceDNS = svc.Name + "." + svc.Namespace + ".svc"
			}

			mounted := ""
			for _, v := range deployment.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					mounted = v.Secret.SecretName
				}
			}
			inject := config.Annotations["cert-manager.io/inject-ca-from"]
			certificates := only(objs, "Certificate")
			if vs.name == "existing-webhook-secret" {
				if inject != "" || len(certificates) != 0 || len(only(objs, "Issuer")) != 0 {
					t.Errorf("with an existing Secret, want no cert-manager objects, got %q and %v", inject, keys(certificates))
				}
				for _, w := range config.Webhooks {
					if len(w.ClientConfig.CABundle) == 0 || !strings.Contains(string(w.ClientConfig.CABundle), "BEGIN CERTIFICATE") {
						t.Errorf("webhook %s has no caBundle", w.Name)
					}
				}
				if mounted != "tenant-operator-webhook-tls-external" {
					t.Errorf("the Deployment mounts Secret %q, not the existing one", mounted)
				}
				return
			}
			cert := typed[cmapi.Certificate](t, one(t, objs, "Certificate"))
			if inject != cert.Namespace+"/"+cert.Name {
				t.Errorf("inject-ca-from = %q, want %s/%s", inject, cert.Namespace, cert.Name)
			}
			if cert.Spec.SecretName != mounted {
				t.Errorf("the Certificate fills Secret %q, the Deployment mounts %q", cert.Spec.SecretName, mounted)
			}
			if !slices.Contains(cert.Spec.DNSNames, serviceDNS) {
				t.Errorf("the Certificate's DNS names %v lack %s", cert.Spec.DNSNames, serviceDNS)
			}
			if cert.Spec.IssuerRef.Kind == "Issuer" {
				issuers := only(objs, "Issuer")
				if len(issuers) == 0 && vs.name != "everything" {
					t.Errorf("the Certificate's Issuer %q is not rendered", cert.Spec.IssuerRef.Name)
				}
				for _, obj := range issuers {
					if obj.GetName() != cert.Spec.IssuerRef.Name || obj.GetNamespace() != cert.Namespace {
						t.Errorf("rendered %s, the Certificate wants Issuer %s", key(obj), cert.Spec.IssuerRef.Name)
					}
				}
			}
		})
	}
}

// TestWebhookCertificateOptions checks that values.schema.json and the templates refuse to turn
// cert-manager off without a Secret and a CA.
func TestWebhookCertificateOptions(t *testing.T) {
	out := helmTemplateErr(t, "--set", "webhook.certManager.enabled=false")
	if !strings.Contains(out, "existingSecret") && !strings.Contains(out, "caBundle") {
		t.Fatalf("want an error naming existingSecret or caBundle, got:\n%s", out)
	}
}

// reachesContainerPort says whether a Service port leads to one of the container's ports.
func reachesContainerPort(svc *corev1.Service, port int32, c corev1.Container) bool {
	for _, p := range svc.Spec.Ports {
		if p.Port != port {
			continue
		}
		for _, cp := range c.Ports {
			if (p.TargetPort.Type == intstr.String && p.TargetPort.StrVal == cp.Name) ||
				(p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == cp.ContainerPort) {
				return true
			}
		}
	}
	return false
}

// selects says whether a Service selector matches pod labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// typedFile decodes the first object of a YAML file into its Go type.
func typedFile[T any](t testing.TB, path string) *T {
	t.Helper()
	return typed[T](t, decodeFile(t, path)[0])
}

// TestAdmissionPolicy checks that the chart installs config/policies' ValidatingAdmissionPolicies
// and bindings unchanged in the default namespace, and that in another namespace every policy
// exempts that namespace's service accounts (the operator's) instead of tenant-operator-system's.
func TestAdmissionPolicy(t *testing.T) {
	var source []*unstructured.Unstructured
	for _, f := range policyFiles(t, repoRoot(t)) {
		source = append(source, decodeFile(t, f)...)
	}
	chart := render(t, valueSets[0])
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		want, got := only(source, kind), only(chart, kind)
		if !slices.Equal(keys(got), keys(want)) {
			t.Fatalf("the chart installs %v, config/policies has %v", keys(got), keys(want))
		}
		for _, w := range want {
			i := slices.IndexFunc(got, func(g *unstructured.Unstructured) bool { return g.GetName() == w.GetName() })
			if !equalJSON(t, content(got[i]), content(w)) {
				t.Errorf("the chart's %s differs from config/policies", key(w))
			}
		}
	}

	other := helmTemplate(t, nil, "--namespace", "platform")
	policies := only(other, "ValidatingAdmissionPolicy")
	if len(policies) < 2 {
		t.Fatalf("in namespace platform the chart installs %v", keys(policies))
	}
	for _, obj := range policies {
		policy := typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, obj)
		var conditions string
		for _, c := range policy.Spec.MatchConditions {
			conditions += c.Expression
		}
		if !strings.Contains(conditions, "system:serviceaccount:platform:") || strings.Contains(conditions, "tenant-operator-system") {
			t.Errorf("in namespace platform the match conditions of %s are %q", policy.Name, conditions)
		}
	}
	deployment := one(t, other, "Deployment")
	if deployment.GetNamespace() != "platform" {
		t.Errorf("the operator runs in %q", deployment.GetNamespace())
	}
}
