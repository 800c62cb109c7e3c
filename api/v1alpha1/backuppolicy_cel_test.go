package v1alpha1_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// s3Validator evaluates the CEL rules of the generated CRD's S3Storage schema, as the API server
// would, without one.
func s3Validator(t *testing.T) (*cel.Validator, *schema.Structural) {
	t.Helper()
	data, err := os.ReadFile("../../config/crd/bases/tenancy.tenantops.io_backuppolicies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	v1 := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.
		Properties["spec"].Properties["schedules"].Items.Schema.Properties["storage"].Properties["s3"]
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(&v1, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := schema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	return cel.NewValidator(s, false, celconfig.PerCallLimit), s
}

// TestS3CredentialRules: the CRD refuses a split in which a job would get the pruner's credential,
// which may delete, and keeps accepting what it accepted before.
func TestS3CredentialRules(t *testing.T) {
	validator, s := s3Validator(t)
	cases := []struct {
		name, s3 string
		want     string // "" for accepted
	}{
		{"one credential, as before", `credentialsSecretRef: {name: all}`, ""},
		{"split", `{credentialsSecretRef: {name: r}, writerCredentialsSecretRef: {name: w}, readerCredentialsSecretRef: {name: r}, prunerCredentialsSecretRef: {name: p}}`, ""},
		{"split per tenant", `{credentialsSecretRef: {name: r}, writerCredentialsSecretRef: {name: w, perTenant: true}, readerCredentialsSecretRef: {name: p, perTenant: true}, prunerCredentialsSecretRef: {name: p}}`, ""},
		{"writer is the pruner", `{credentialsSecretRef: {name: r}, writerCredentialsSecretRef: {name: p}, prunerCredentialsSecretRef: {name: p}}`, "backup jobs must not get the pruner's credentials"},
		{"writer falls back to the pruner", `{credentialsSecretRef: {name: p}, readerCredentialsSecretRef: {name: r}, prunerCredentialsSecretRef: {name: p}}`, "backup jobs must not get the pruner's credentials"},
		{"reader is the pruner", `{credentialsSecretRef: {name: x}, writerCredentialsSecretRef: {name: w}, readerCredentialsSecretRef: {name: p}, prunerCredentialsSecretRef: {name: p}}`, "verification jobs must not get the pruner's credentials"},
		{"per-tenant name too long", `{credentialsSecretRef: {name: x}, writerCredentialsSecretRef: {name: ` + strings.Repeat("w", 197) + `, perTenant: true}}`, "at most 196 characters with perTenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(c.s3), &obj); err != nil {
				t.Fatal(err)
			}
			errs, _ := validator.Validate(context.Background(), field.NewPath("s3"), s, obj, nil, celconfig.RuntimeCELCostBudget)
			got := errs.ToAggregate()
			switch {
			case c.want == "" && got != nil:
				t.Fatalf("refused: %v", got)
			case c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)):
				t.Fatalf("got %v, want %q", got, c.want)
			}
		})
	}
}
