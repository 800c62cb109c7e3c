// Package ssa applies objects with server-side apply and remembers what it applied, so that an
// unchanged object is not sent again: Cluster API's approach (internal/util/ssa/cache.go). An
// apply is skipped only when the same request was applied before and the object in the informer
// cache still has the resourceVersion that apply returned; any change by anyone sends the request
// again.
//
// A restart forgets what was applied. So that a restarted manager does not send every object
// again, each apply also marks the object with a hash of its request (AnnotationApplied); after a
// restart an apply is skipped when the cached object carries the same hash and no field manager
// but this one's apply has written the object itself since: the cache must keep the managed
// fields' writers (the operator's transform, cachemeta.Compact, drops only their field sets).
// Someone's change while the manager was down shows as their own field manager entry, and is
// undone.
package ssa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// applyConfiguration is what client-go's and cert-manager's generated apply configurations are.
type applyConfiguration interface {
	runtime.ApplyConfiguration
	GetName() *string
	GetNamespace() *string
	GetKind() *string
	GetAPIVersion() *string
}

// AnnotationApplied holds the hash of the last apply request the object was given.
const AnnotationApplied = "tenancy.tenantops.io/applied"

// writtenOnlyBy tells whether owner's apply is the only writer of obj itself (subresources such as
// status aside) that its managed fields name; false when they name none (not kept in the cache).
func writtenOnlyBy(obj client.Object, owner string) bool {
	fields := obj.GetManagedFields()
	if len(fields) == 0 {
		return false
	}
	ours := false
	for _, f := range fields {
		switch {
		case f.Subresource != "":
		case f.Manager == owner && f.Operation == metav1.ManagedFieldsOperationApply:
			ours = true
		default:
			return false
		}
	}
	return ours
}

// Applier applies objects under one field owner, with force, skipping repeats.
type Applier struct {
	Client client.Client
	Owner  client.FieldOwner
	// Changed receives the objects whose watch events arrived while they were being applied and
	// turned out to report another writer's change, as if their events came now; see
	// NeedsReconcile. Nil drops them.
	Changed func(client.Object)

	// applied and inFlight are keyed by a hash of the object's kind, namespace and name: at
	// ten thousand tenants the records number hundreds of thousands, and the names in full would
	// take three times the memory of the rest of the record.
	mu      sync.Mutex
	applied map[recordKey]appliedRequest
	// inFlight holds, per object being applied, the watch events that arrived meanwhile: the
	// event of a create can come before the API server's response does.
	inFlight map[recordKey]*inFlightApply
}

// recordKey names an object in the applier's records: 128 bits of the SHA-256 of its kind,
// namespace and name, so that two objects share a record with a chance of one in 2^64 even at
// billions of objects.
type recordKey [16]byte

// requestHash is 128 bits of the SHA-256 of an apply request: as unlikely to repeat by chance.
type requestHash [16]byte

type inFlightApply struct {
	applies int
	events  []client.Object
}

type appliedRequest struct {
	requestHash     requestHash
	resourceVersion string
}

// Apply sends obj unless the identical request was already applied to the object as it still is.
// It reports whether it sent a request. When current is not nil, it receives the object as it is
// now: the API server's response, or the cached object when nothing was sent.
func (a *Applier) Apply(ctx context.Context, obj runtime.ApplyConfiguration, current client.Object) (bool, error) {
	ac, ok := obj.(applyConfiguration)
	if !ok {
		return true, fmt.Errorf("%T is not a generated apply configuration", obj)
	}
	gvk := schema.FromAPIVersionAndKind(deref(ac.GetAPIVersion()), deref(ac.GetKind()))
	key := objectKey(gvk, deref(ac.GetNamespace()), deref(ac.GetName()))
	// Named only for an error: Apply runs for every owned object on every pass.
	name := func() string { return fmt.Sprintf("%s %s/%s", gvk.Kind, deref(ac.GetNamespace()), deref(ac.GetName())) }
	request, err := json.Marshal(obj)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", name(), err)
	}
	sum := sha256.Sum256(request)
	hash := requestHash(sum[:16])
	mark := hex.EncodeToString(hash[:])

	prev, known := a.lookup(key)
	if !known || prev.requestHash == hash {
		cached, err := a.cached(ctx, gvk, ac)
		unchanged := err == nil && (known && cached.GetResourceVersion() == prev.resourceVersion ||
			// Not applied by this process: applied by an earlier one, and nobody else wrote since.
			!known && cached.GetAnnotations()[AnnotationApplied] == mark && writtenOnlyBy(cached, string(a.Owner)))
		if unchanged {
			if !known {
				a.remember(key, appliedRequest{requestHash: hash, resourceVersion: cached.GetResourceVersion()})
			}
			if current != nil {
				return false, convert(cached, current)
			}
			return false, nil
		}
	}
	marked, err := withAnnotation(request, AnnotationApplied, mark)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", name(), err)
	}
	a.begin(key)
	resourceVersion, err := a.send(ctx, gvk, ac, marked, current)
	if err != nil {
		a.finish(key, nil)
		return true, err
	}
	a.finish(key, &appliedRequest{requestHash: hash, resourceVersion: resourceVersion})
	return true, nil
}

// Create creates obj, as its apply configuration describes it, only when it does not exist yet,
// and reports whether it did. It is for what is written once and never again, such as a generated
// password: an apply would overwrite the one another process (a replica or shard racing this one)
// created after this one looked, and the database initialized with it.
func (a *Applier) Create(ctx context.Context, obj runtime.ApplyConfiguration) (bool, error) {
	ac, ok := obj.(applyConfiguration)
	if !ok {
		return false, fmt.Errorf("%T is not a generated apply configuration", obj)
	}
	request, err := json.Marshal(obj)
	if err != nil {
		return false, fmt.Errorf("encode %s %s: %w", deref(ac.GetKind()), deref(ac.GetName()), err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(request); err != nil {
		return false, fmt.Errorf("decode %s %s: %w", deref(ac.GetKind()), deref(ac.GetName()), err)
	}
	if err := a.Client.Create(ctx, u, a.Owner); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// send applies the request and returns the object's resourceVersion after it. Unless the caller
// wants the object back, the API server answers with its metadata only, which is less to encode,
// send and decode than the whole object, and needs no conversion to read.
func (a *Applier) send(ctx context.Context, gvk schema.GroupVersionKind, ac applyConfiguration, request []byte, current client.Object) (string, error) {
	if current != nil {
		// The response, the whole object, is decoded into current.
		current.GetObjectKind().SetGroupVersionKind(gvk)
		current.SetNamespace(deref(ac.GetNamespace()))
		current.SetName(deref(ac.GetName()))
		if err := a.Client.Patch(ctx, current, client.RawPatch(types.ApplyPatchType, request), a.Owner, client.ForceOwnership); err != nil {
			return "", err
		}
		return current.GetResourceVersion(), nil
	}
	response := &metav1.PartialObjectMetadata{}
	response.SetGroupVersionKind(gvk)
	response.SetNamespace(deref(ac.GetNamespace()))
	response.SetName(deref(ac.GetName()))
	if err := a.Client.Patch(ctx, response, client.RawPatch(types.ApplyPatchType, request), a.Owner, client.ForceOwnership); err != nil {
		return "", err
	}
	return response.GetResourceVersion(), nil
}

// cached reads the object from the client's informer cache.
func (a *Applier) cached(ctx context.Context, gvk schema.GroupVersionKind, ac applyConfiguration) (client.Object, error) {
	obj, err := a.Client.Scheme().New(gvk)
	if err != nil {
		return nil, err
	}
	cobj, ok := obj.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s is not a client.Object", gvk)
	}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: deref(ac.GetNamespace()), Name: deref(ac.GetName())}, cobj); err != nil {
		return nil, err
	}
	return cobj, nil
}

// convert copies one representation of an object into another through JSON.
func convert(from any, to any) error {
	data, err := json.Marshal(from)
	if err != nil {
		return fmt.Errorf("encode object: %w", err)
	}
	if err := json.Unmarshal(data, to); err != nil {
		return fmt.Errorf("decode object: %w", err)
	}
	return nil
}

// NeedsReconcile tells whether a watch event (a creation or an update) for obj may report a change
// the operator has not made. It does not when obj is exactly as the last apply left it. An event
// that arrives while obj is being applied is held until the apply returns; it is handed to
// Changed then if it was not that apply's, so no one else's write goes unnoticed.
func (a *Applier) NeedsReconcile(obj client.Object) bool {
	key, ok := a.keyOf(obj)
	if !ok {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.inFlight[key]; ok {
		f.events = append(f.events, obj)
		return false
	}
	prev, ok := a.applied[key]
	return !ok || prev.resourceVersion != obj.GetResourceVersion()
}

// Forget drops what the applier remembers of a deleted object: a manager that outlives many
// tenants would otherwise keep a record of every object it ever applied.
func (a *Applier) Forget(obj client.Object) {
	key, ok := a.keyOf(obj)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.applied, key)
}

// Remembered is how many objects the applier holds a record of.
func (a *Applier) Remembered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.applied)
}

func (a *Applier) lookup(key recordKey) (appliedRequest, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.applied[key]
	return r, ok
}

// remember records that the object key is as the request left it, found so rather than applied.
func (a *Applier) remember(key recordKey, applied appliedRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.applied == nil {
		a.applied = map[recordKey]appliedRequest{}
	}
	a.applied[key] = applied
}

// begin marks key as being applied, so its watch events wait for the outcome.
func (a *Applier) begin(key recordKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight == nil {
		a.inFlight = map[recordKey]*inFlightApply{}
	}
	f, ok := a.inFlight[key]
	if !ok {
		f = &inFlightApply{}
		a.inFlight[key] = f
	}
	f.applies++
}

// finish records an apply's outcome (nil when it failed) and passes on the events held meanwhile
// that it does not explain.
func (a *Applier) finish(key recordKey, applied *appliedRequest) {
	a.mu.Lock()
	if applied != nil {
		if a.applied == nil {
			a.applied = map[recordKey]appliedRequest{}
		}
		a.applied[key] = *applied
	} else {
		delete(a.applied, key)
	}
	var held []client.Object
	if f := a.inFlight[key]; f != nil {
		if f.applies--; f.applies == 0 {
			delete(a.inFlight, key)
			held = f.events
		}
	}
	a.mu.Unlock()
	if a.Changed == nil {
		return
	}
	for _, obj := range held {
		if applied == nil || obj.GetResourceVersion() != applied.resourceVersion {
			a.Changed(obj)
		}
	}
}

// keyOf is the record key of an object a watch event brought; ok is false when the scheme does not
// know its kind.
func (a *Applier) keyOf(obj client.Object) (recordKey, bool) {
	gvk, err := apiutil.GVKForObject(obj, a.Client.Scheme())
	if err != nil {
		return recordKey{}, false
	}
	return objectKey(gvk, obj.GetNamespace(), obj.GetName()), true
}

// objectKey names an object in the applier's records; applies and watch events must agree on it.
func objectKey(gvk schema.GroupVersionKind, namespace, name string) recordKey {
	sum := sha256.Sum256([]byte(gvk.String() + "/" + namespace + "/" + name))
	return recordKey(sum[:16])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// withAnnotation adds an annotation to an apply request.
func withAnnotation(request []byte, key, value string) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(request, &obj); err != nil {
		return nil, err
	}
	metadata, _ := obj["metadata"].(map[string]any)
	if metadata == nil {
		metadata = map[string]any{}
		obj["metadata"] = metadata
	}
	annotations, _ := metadata["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		metadata["annotations"] = annotations
	}
	annotations[key] = value
	return json.Marshal(obj)
}
