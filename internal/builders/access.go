package builders

import (
	rbacv1 "k8s.io/api/rbac/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// RoleBindings bind the tenant's admins, editors and viewers to the built-in admin, edit and view
// roles in its namespace. An empty list yields no binding: nobody has access unless listed.
func RoleBindings(t *v1alpha1.Tenant) []*rbacv1ac.RoleBindingApplyConfiguration {
	var out []*rbacv1ac.RoleBindingApplyConfiguration
	for _, role := range []struct {
		name     string
		subjects []rbacv1.Subject
	}{
		{"admin", t.Spec.Access.Admins},
		{"edit", t.Spec.Access.Editors},
		{"view", t.Spec.Access.Viewers},
	} {
		if len(role.subjects) == 0 {
			continue
		}
		out = append(out, rbacv1ac.RoleBinding("tenant-"+role.name, NamespaceName(t)).
			WithLabels(TenantLabels(t)).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(role.name)).
			WithSubjects(subjects(role.subjects)...))
	}
	return out
}

// TenantReaderClusterRole lets its subjects get their own Tenant object, and nothing else.
func TenantReaderClusterRole(t *v1alpha1.Tenant) *rbacv1ac.ClusterRoleApplyConfiguration {
	return rbacv1ac.ClusterRole(TenantReaderName(t)).
		WithLabels(TenantLabels(t)).
		WithRules(rbacv1ac.PolicyRule().
			WithAPIGroups(v1alpha1.GroupVersion.Group).
			WithResources("tenants").
			WithResourceNames(t.Name).
			WithVerbs("get"))
}

// TenantReaderClusterRoleBinding binds every admin, editor and viewer to TenantReaderClusterRole.
func TenantReaderClusterRoleBinding(t *v1alpha1.Tenant) *rbacv1ac.ClusterRoleBindingApplyConfiguration {
	all := append(append(append([]rbacv1.Subject{}, t.Spec.Access.Admins...), t.Spec.Access.Editors...), t.Spec.Access.Viewers...)
	return rbacv1ac.ClusterRoleBinding(TenantReaderName(t)).
		WithLabels(TenantLabels(t)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(TenantReaderName(t))).
		WithSubjects(subjects(all)...)
}

func subjects(in []rbacv1.Subject) []*rbacv1ac.SubjectApplyConfiguration {
	out := make([]*rbacv1ac.SubjectApplyConfiguration, 0, len(in))
	for _, s := range in {
		sub := rbacv1ac.Subject().WithKind(s.Kind).WithName(s.Name)
		switch {
		case s.Kind == rbacv1.ServiceAccountKind:
			sub.WithNamespace(s.Namespace)
		case s.APIGroup != "":
			sub.WithAPIGroup(s.APIGroup)
		default:
			sub.WithAPIGroup(rbacv1.GroupName)
		}
		out = append(out, sub)
	}
	return out
}
