package builders

import (
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmv1ac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/certmanager/v1"
	cmmetaac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// TenantCertificate is the certificate for the tenant's hostnames, from IssuerFor; the ingress in
// the tenant's namespace serves it from TenantCertificateSecretName. No key encipherment usage:
// an ECDSA key signs, it does not encipher.
func TenantCertificate(t *v1alpha1.Tenant, opts Options) *cmv1ac.CertificateApplyConfiguration {
	issuer := IssuerFor(t, opts)
	return cmv1ac.Certificate(TenantCertificateName(t), NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(cmv1ac.CertificateSpec().
			WithSecretName(TenantCertificateSecretName(t)).
			WithDNSNames(t.Spec.Hostnames...).
			WithUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature).
			WithPrivateKey(ecdsaKey()).
			WithSecretTemplate(cmv1ac.CertificateSecretTemplate().WithLabels(TenantLabels(t))).
			WithIssuerRef(cmmetaac.IssuerReference().WithName(issuer.Name).WithKind(issuer.Kind).WithGroup(cmapi.SchemeGroupVersion.Group)))
}
