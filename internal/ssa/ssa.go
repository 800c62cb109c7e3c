// Package ssa applies objects with server-side apply and remembers what it applied, so that an
// unchanged object is not sent again: Cluster API's approach (internal/util/ssa/cache.go). An
// apply is skipped only when the same request was applied before and the object in the informer
// cache still has the resourceVersion that apply returned; any change by anyone, or a restart,
// sends the request again.
package ssa

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// Applier applies objects under one field owner, with force, skipping repeats.
type Applier struct {
	Client client.Client
	Owner  client.FieldOwner
	// Changed receives the objects whose watch events arrived while they were being applied and
	// turned out to report another writer's change, as if their events came now; see
	// NeedsReconcile. Nil drops them.
	Changed func(client.Object)

	mu      sync.Mutex
	applied map[string]appliedRequest
	// inFlight holds, per object being applied, the watch events that arrived meanwhile: the
	// event of a create can come before the API server's response does.
	inFlight map[string]*inFlightApply
}

type inFlightApply struct {
	applies int
	events  []client.Object
}

type appliedRequest struct {
	requestHash     [sha256.Size]byte
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
	request, err := json.Marshal(obj)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", key, err)
	}
	hash := sha256.Sum256(request)

	if prev, ok := a.lookup(key); ok && prev.requestHash == hash {
		cached, err := a.cached(ctx, gvk, ac)
		if err == nil && cached.GetResourceVersion() == prev.resourceVersion {
			if current != nil {
				return false, convert(cached, current)
			}
			return false, nil
		}
	}
	a.begin(key)
	resourceVersion, err := a.send(ctx, gvk, ac, request, current)
	if err != nil {
		a.finish(key, nil)
		return true, err
	}
	a.finish(key, &appliedRequest{requestHash: hash, resourceVersion: resourceVersion})
	return true, nil
}

// send applies the request and returns the object's resourceVersion after it. Unless the caller
// wants the object back, the API server answers with its metadata only, which is less to encode,
// send and decode than the whole object, and needs no conversion to read.
func (a *Applier) send(ctx context.Context, gvk schema.GroupVersionKind, ac applyConfiguration, request []byte, current client.Object) (string, error) {
	if current != nil {
		if err := a.Client.Apply(ctx, ac, a.Owner, client.ForceOwnership); err != nil {
			return "", err
		}
		// The apply configuration now holds the API server's response.
		if err := convert(ac, current); err != nil {
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
	gvk, err := apiutil.GVKForObject(obj, a.Client.Scheme())
	if err != nil {
		return true
	}
	key := objectKey(gvk, obj.GetNamespace(), obj.GetName())
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.inFlight[key]; ok {
		f.events = append(f.events, obj)
		return false
	}
	prev, ok := a.applied[key]
	return !ok || prev.resourceVersion != obj.GetResourceVersion()
}

func (a *Applier) lookup(key string) (appliedRequest, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.applied[key]
	return r, ok
}

// begin marks key as being applied, so its watch events wait for the outcome.
func (a *Applier) begin(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight == nil {
		a.inFlight = map[string]*inFlightApply{}
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
func (a *Applier) finish(key string, applied *appliedRequest) {
	a.mu.Lock()
	if applied != nil {
		if a.applied == nil {
			a.applied = map[string]appliedRequest{}
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

// objectKey names an object in the applier's records; applies and watch events must agree on it.
func objectKey(gvk schema.GroupVersionKind, namespace, name string) string {
	return fmt.Sprintf("%s/%s/%s", gvk.String(), namespace, name)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
