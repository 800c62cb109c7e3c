package chart

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// shardedKinds are what sharding.shards changes: one Deployment and one PodDisruptionBudget per shard.
var shardedKinds = []string{"Deployment", "PodDisruptionBudget"}

// TestRenderShards: sharding.shards=1 renders exactly what the defaults render; 3 renders one
// Deployment per shard (<fullname>-shard-<i>, --shards=3 --shard-index=<i>, the chart's replicas
// with leader election), each selecting its own pods only, one PodDisruptionBudget per shard, and
// every other object as without sharding: the Services select every shard's pods, as every
// replica serves the webhook and each shard exports its own tenants' metrics.
func TestRenderShards(t *testing.T) {
	defaults := render(t, valueSets[0])
	if one := helmTemplate(t, nil, "--set", "sharding.shards=1"); !equalJSON(t, one, defaults) {
		t.Error("sharding.shards=1 renders otherwise than the defaults")
	}
	deployment := typed[appsv1.Deployment](t, one(t, defaults, "Deployment"))
	for _, a := range deployment.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--shard") {
			t.Errorf("the unsharded Deployment has %s", a)
		}
	}

	const shards = 3
	sharded := helmTemplate(t, nil, "--set", fmt.Sprintf("sharding.shards=%d", shards))
	var rest, restDefaults []*unstructured.Unstructured
	for _, obj := range sharded {
		if !slices.Contains(shardedKinds, obj.GetKind()) {
			rest = append(rest, obj)
		}
	}
	for _, obj := range defaults {
		if !slices.Contains(shardedKinds, obj.GetKind()) {
			restDefaults = append(restDefaults, obj)
		}
	}
	if !equalJSON(t, rest, restDefaults) {
		t.Errorf("sharding changes objects besides %v", shardedKinds)
	}

	deployments := only(sharded, "Deployment")
	budgets := only(sharded, "PodDisruptionBudget")
	if len(deployments) != shards || len(budgets) != shards {
		t.Fatalf("%d Deployments and %d PodDisruptionBudgets, want %d of each", len(deployments), len(budgets), shards)
	}
	var pods []labels.Set
	for i, obj := range deployments {
		d := typed[appsv1.Deployment](t, obj)
		name := fmt.Sprintf("%s-shard-%d", deployment.Name, i)
		if d.Name != name {
			t.Errorf("Deployment %d is %s, want %s", i, d.Name, name)
		}
		if got := ptr.Deref(d.Spec.Replicas, 1); got != ptr.Deref(deployment.Spec.Replicas, 1) {
			t.Errorf("%s: %d replicas, want the chart's %d for failover", d.Name, got, ptr.Deref(deployment.Spec.Replicas, 1))
		}
		args := d.Spec.Template.Spec.Containers[0].Args
		for _, want := range []string{"--leader-elect=true", fmt.Sprintf("--shards=%d", shards), fmt.Sprintf("--shard-index=%d", i)} {
			if !slices.Contains(args, want) {
				t.Errorf("%s: args %v lack %s", d.Name, args, want)
			}
		}
		// But for the shard's flags and label, the pod is the unsharded one.
		unsharded := d.DeepCopy()
		unsharded.Spec.Template.Spec.Containers[0].Args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "--shard") })
		delete(unsharded.Spec.Template.Labels, "tenancy.tenantops.io/shard")
		delete(unsharded.Spec.Selector.MatchLabels, "tenancy.tenantops.io/shard")
		delete(unsharded.Labels, "tenancy.tenantops.io/shard")
		for _, c := range unsharded.Spec.Template.Spec.TopologySpreadConstraints {
			delete(c.LabelSelector.MatchLabels, "tenancy.tenantops.io/shard")
		}
		unsharded.Name = deployment.Name
		if !equalJSON(t, unsharded, deployment) {
			t.Errorf("%s differs from the unsharded Deployment in more than its shard", d.Name)
		}
		if v := restrictedViolation(t, &d.Spec.Template); v != "" {
			t.Errorf("%s: the pod violates Pod Security restricted: %s", d.Name, v)
		}
		pods = append(pods, labels.Set(d.Spec.Template.Labels))
	}
	// Each Deployment and budget selects its own shard's pods only; each Service all of them.
	for i, obj := range deployments {
		d := typed[appsv1.Deployment](t, obj)
		b := typed[policyv1.PodDisruptionBudget](t, budgets[i])
		for j, pod := range pods {
			if got := labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(pod); got != (i == j) {
				t.Errorf("Deployment %s selects the pods of shard %d: %v", d.Name, j, got)
			}
			if got := labels.SelectorFromSet(b.Spec.Selector.MatchLabels).Matches(pod); got != (i == j) {
				t.Errorf("PodDisruptionBudget %s selects the pods of shard %d: %v", b.Name, j, got)
			}
		}
	}
	for _, obj := range only(sharded, "Service") {
		svc := typed[corev1.Service](t, obj)
		for j, pod := range pods {
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pod) {
				t.Errorf("Service %s does not select the pods of shard %d", svc.Name, j)
			}
		}
	}

	if out := helmTemplateErr(t, "--set", "sharding.shards=0"); !strings.Contains(out, "sharding") {
		t.Errorf("sharding.shards=0: want a schema error naming sharding, got:\n%s", out)
	}
}

// TestShardedChartValidOnAPIServer has the real API server validate the sharded chart's objects
// and admit each shard's pod under Pod Security restricted.
func TestShardedChartValidOnAPIServer(t *testing.T) {
	c := apiServer(t)
	objs := helmTemplate(t, nil, "--set", "sharding.shards=3")
	validate(t, c, objs)
	for _, obj := range only(objs, "Deployment") {
		admitPodRestricted(t, c, "chart-"+obj.GetName(), typed[appsv1.Deployment](t, obj))
	}
}
