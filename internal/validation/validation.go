// Package validation checks what the CRDs' OpenAPI and CEL rules cannot express: cron schedules,
// periods, age recipients, time zones, and firewall CIDRs against the cluster's own ranges,
// which only the operator's options know. The validating webhook rejects bad objects with these
// checks at admission, and the controllers run them again, because an object can slip past a
// webhook that is down: then the object gets a condition naming the field instead.
package validation

import (
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/schedule"
)

// Tenant validates the parts of a Tenant's spec that CEL cannot.
func Tenant(t *v1alpha1.Tenant) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if m := t.Spec.Monitoring; m != nil && m.BusinessHours != nil {
		path := spec.Child("monitoring", "businessHours", "timeZone")
		if _, err := time.LoadLocation(m.BusinessHours.TimeZone); err != nil || m.BusinessHours.TimeZone == "Local" {
			errs = append(errs, field.Invalid(path, m.BusinessHours.TimeZone, "must be an IANA time zone name such as Europe/Amsterdam"))
		}
	}
	if t.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete && t.Annotations[v1alpha1.AnnotationAllowDelete] != "true" {
		errs = append(errs, field.Invalid(spec.Child("deletionPolicy"), t.Spec.DeletionPolicy,
			fmt.Sprintf("Delete removes the tenant's namespace and database volume with the Tenant; confirm it with the annotation %s: \"true\"", v1alpha1.AnnotationAllowDelete)))
	}
	return errs
}

// Firewall refuses every CIDR of spec.firewall that lies inside one of the cluster's own ranges
// (builders.ClusterRanges: pods, Services, nodes, the metadata service). The firewall builder
// excepts those ranges from every CIDR that contains them, but cannot carve a range out of a CIDR
// inside it, so such a CIDR would open part of the cluster to or from the tenant: another
// tenant's pods, the operator's, a Service IP, a node's kubelet. The builder leaves such CIDRs
// out; this says why, naming the field.
func Firewall(t *v1alpha1.Tenant, ranges []builders.ClusterRange) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("spec", "firewall")
	check := func(p *field.Path, cidr string) {
		_, inside, err := builders.ExceptClusterRanges(cidr, ranges)
		switch {
		case err != nil:
			// The CRD's CEL rule refuses it already, with a message of its own.
			errs = append(errs, field.Invalid(p, cidr, "must be a CIDR such as 198.51.100.0/24"))
		case inside != nil:
			errs = append(errs, field.Invalid(p, cidr, fmt.Sprintf(
				"lies inside %s, which no tenant firewall rule may open; name addresses outside the cluster "+
					"(a wider CIDR such as 0.0.0.0/0 gets the cluster's ranges excepted)", inside)))
		}
	}
	for i, cidr := range t.Spec.Firewall.AllowedCIDRs {
		check(path.Child("allowedCIDRs").Index(i), cidr)
	}
	for i, rule := range t.Spec.Firewall.Egress {
		for j, cidr := range rule.ToCIDRs {
			check(path.Child("egress").Index(i).Child("toCIDRs").Index(j), cidr)
		}
	}
	return errs
}

// BackupPolicy validates the parts of a BackupPolicy's spec that CEL cannot.
func BackupPolicy(p *v1alpha1.BackupPolicy) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	for i, s := range p.Spec.Schedules {
		path := spec.Child("schedules").Index(i)
		if _, err := schedule.ParseCron(s.Schedule); err != nil {
			errs = append(errs, field.Invalid(path.Child("schedule"), s.Schedule, err.Error()))
		}
		if s.MaxAge != "" {
			if _, err := schedule.ParsePeriod(s.MaxAge); err != nil {
				errs = append(errs, field.Invalid(path.Child("maxAge"), s.MaxAge, err.Error()))
			}
		}
		if s.FullEvery != "" {
			if _, err := schedule.ParsePeriod(s.FullEvery); err != nil {
				errs = append(errs, field.Invalid(path.Child("fullEvery"), s.FullEvery, err.Error()))
			}
		}
	}
	for i, r := range p.Spec.Encryption.Recipients {
		path := spec.Child("encryption", "recipients").Index(i)
		switch err := Recipient(r); err {
		case nil:
		case errPrivateKey:
			// Never echo a private key back into an API response, event or log.
			errs = append(errs, field.Invalid(path, field.OmitValueType{}, err.Error()))
		default:
			errs = append(errs, field.Invalid(path, r, err.Error()))
		}
	}
	if v := p.Spec.Verification; v != nil {
		if _, err := schedule.ParseCron(v.Schedule); err != nil {
			errs = append(errs, field.Invalid(spec.Child("verification", "schedule"), v.Schedule, err.Error()))
		}
		if p.Spec.Encryption.IdentitySecretRef == nil {
			errs = append(errs, field.Required(spec.Child("encryption", "identitySecretRef"),
				"restore drills need an identity to decrypt the backups when spec.verification is set"))
		}
	}
	return errs
}

// RetentionPolicy validates the parts of a RetentionPolicy's spec that CEL cannot.
func RetentionPolicy(p *v1alpha1.RetentionPolicy) field.ErrorList {
	var errs field.ErrorList
	if p.Spec.MaxAge != "" {
		if _, err := schedule.ParsePeriod(p.Spec.MaxAge); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "maxAge"), p.Spec.MaxAge, err.Error()))
		}
	}
	return errs
}

// Recipient checks that s is an age public key. Private keys pasted by mistake are refused
// without echoing them back.
func Recipient(s string) error {
	if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") || strings.HasPrefix(strings.ToUpper(s), "AGE-PLUGIN-") {
		return errPrivateKey
	}
	if _, err := age.ParseRecipients(strings.NewReader(s)); err != nil || strings.ContainsAny(s, "\n\r") {
		return errNotRecipient
	}
	return nil
}

type validationError string

func (e validationError) Error() string { return string(e) }

const (
	errPrivateKey   = validationError("is an age private key (identity); list the public key (age1...) here and keep the identity in a Secret")
	errNotRecipient = validationError("must be an age public key such as age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p")
)
