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
		binding  string
		role     string
		subjects []rbacv1.Subject
	}{
		{RoleBindingAdmins, "admin", t.Spec.Access.Admins},
		{RoleBindingEditors, "edit", t.Spec.Access.Editors},
		{RoleBindingViewers, "view", t.Spec.Access.Viewers},
	} {
		if len(role.subjects) == 0 {
			continue
		}
		out = append(out, rbacv1ac.RoleBinding(role.binding, NamespaceName(t)).
			WithLabels(TenantLabels(t)).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(role.role)).
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

// TenantReaderClusterRoleBinding binds every admin, editor and viewer to TenantReaderClusterRole,
// each subject once. With no subjects the controller deletes it rather than apply it empty.
func TenantReaderClusterRoleBinding(t *v1alpha1.Tenant) *rbacv1ac.ClusterRoleBindingApplyConfiguration {
	var all []rbacv1.Subject
	seen := map[rbacv1.Subject]bool{}
	for _, list := range [][]rbacv1.Subject{t.Spec.Access.Admins, t.Spec.Access.Editors, t.Spec.Access.Viewers} {
		for _, s := range list {
			if key := normalized(s); !seen[key] {
				seen[key] = true
				all = append(all, s)
			}
		}
	}
	return rbacv1ac.ClusterRoleBinding(TenantReaderName(t)).
		WithLabels(TenantLabels(t)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(TenantReaderName(t))).
		WithSubjects(subjects(all)...)
}

// normalized is the subject as RBAC reads it: users and groups in the RBAC API group whatever
// the spec wrote, service accounts in the core group with their namespace.
func normalized(s rbacv1.Subject) rbacv1.Subject {
	if s.Kind == rbacv1.ServiceAccountKind {
		return rbacv1.Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}
	}
	return rbacv1.Subject{Kind: s.Kind, APIGroup: rbacv1.GroupName, Name: s.Name}
}

func subjects(in []rbacv1.Subject) []*rbacv1ac.SubjectApplyConfiguration {
	out := make([]*rbacv1ac.SubjectApplyConfiguration, 0, len(in))
	for _, s := range in {
		n := normalized(s)
		sub := rbacv1ac.Subject().WithKind(n.Kind).WithName(n.Name)
		if n.Kind == rbacv1.ServiceAccountKind {
			sub.WithNamespace(n.Namespace)
		} else {
			sub.WithAPIGroup(n.APIGroup)
		}
		out = append(out, sub)
	}
	return out
}
