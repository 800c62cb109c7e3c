// Package cachemeta makes the metadata of cached objects small. Every object the operator caches
// repeats the same few strings: its namespace, the tenant's name and UID in its labels and owner
// reference, the label and annotation keys, the field managers' names. Decoded from a watch, each
// object holds its own copies; at ten thousand tenants and some twenty objects each, the copies
// are a good part of the cache. Compact makes the objects share one copy of each.
package cachemeta

import (
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Compact replaces the repeated strings of obj's metadata with shared copies, and drops what the
// operator never reads of its managed fields: their field sets and times. Who wrote the object
// (manager, operation, subresource) stays, which the server-side applier reads after a restart.
//
// The shared copies come from the unique package, which forgets a string once no object uses it:
// what a tenant writes into its own objects' labels cannot grow a table that outlives them.
func Compact(obj metav1.Object) {
	obj.SetNamespace(share(obj.GetNamespace()))
	if labels := obj.GetLabels(); len(labels) > 0 {
		obj.SetLabels(shareMap(labels, true))
	}
	if annotations := obj.GetAnnotations(); len(annotations) > 0 {
		// Annotation values (hashes, times) differ between objects; only keys recur.
		obj.SetAnnotations(shareMap(annotations, false))
	}
	refs := obj.GetOwnerReferences()
	for i := range refs {
		refs[i].APIVersion = share(refs[i].APIVersion)
		refs[i].Kind = share(refs[i].Kind)
		refs[i].Name = share(refs[i].Name)
		refs[i].UID = types.UID(share(string(refs[i].UID)))
	}
	fields := obj.GetManagedFields()
	for i := range fields {
		fields[i].Manager = share(fields[i].Manager)
		fields[i].Operation = metav1.ManagedFieldsOperationType(share(string(fields[i].Operation)))
		fields[i].APIVersion = share(fields[i].APIVersion)
		fields[i].Subresource = share(fields[i].Subresource)
		fields[i].FieldsType = ""
		fields[i].FieldsV1 = nil
		fields[i].Time = nil
	}
}

// shareMap returns m with its keys, and its values too when values is set, shared. The map is
// rebuilt rather than updated in place: replacing a key's value does not replace the key.
func shareMap(m map[string]string, values bool) map[string]string {
	shared := make(map[string]string, len(m))
	for k, v := range m {
		if values {
			v = share(v)
		}
		shared[share(k)] = v
	}
	return shared
}

func share(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}
