package uptime

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels of the ConfigMaps that hold the histories. They do not carry the managed-by label of
// tenants' objects, so the manager neither caches nor watches them: it reads them once, at start.
const (
	historyLabelName      = "app.kubernetes.io/name"
	historyLabelComponent = "app.kubernetes.io/component"
	historyComponent      = "uptime-history"
)

// Shard sizes. A month of steady probing encodes in about 15 bytes and an eventful one in a few
// hundred; the worst case, every 5-minute bucket unlike its neighbours, is 26 KB. A ConfigMap
// holds at most 1 MiB, so shards are split further (their count doubled) before one reaches
// maxShardBytes.
const (
	minShards     = 8
	maxShardBytes = 512 << 10
)

// ConfigMapStore keeps every tenant's history in a few ConfigMaps in the operator's namespace,
// each holding the tenants whose names hash to it. Saving writes only the shards whose content
// changed, so the number of writes an hour is bounded by the number of shards, not of tenants: a
// steady tenant costs no write of its own. An earlier layout, one ConfigMap per tenant, is read
// and then removed.
//
// A manager that is one shard of several (package shard) keeps its tenants' histories in a set of
// ConfigMaps of its own (Set), so that the managers never write over each other. It loads every
// set, of whatever shard count, and keeps the newest history of each tenant it owns (Owns): a
// tenant that a change of the shard count moved to it keeps its history. The sets of a shard count
// no longer used are left as they are (their histories age out; they may be deleted once every
// shard of the new count has saved).
type ConfigMapStore struct {
	// Client writes the shards; Reader reads them (the API server directly: they are not cached).
	Client    client.Client
	Reader    client.Reader
	Namespace string
	Owner     client.FieldOwner
	// Set names the ConfigMaps this manager writes, uptime-history-<set>-<count>-<index>: its
	// shard (shard-1-of-3); empty for a manager that is not sharded, whose ConfigMaps are
	// uptime-history-<count>-<index>.
	Set string
	// Owns tells the tenants whose histories this manager keeps; every tenant when nil.
	Owns func(tenant string) bool

	mu sync.Mutex
	// shards is how many shards the last save wrote; written their content, by name.
	shards  int
	written map[string][]byte
	// legacy are per-tenant ConfigMaps to delete once the shards hold their histories.
	legacy []string
}

// legacySuffix ends the name of a per-tenant history ConfigMap of the earlier layout,
// tenant-<name>-uptime, labelled with its tenant.
const legacySuffix = "-uptime"

// Load reads every shard, of every set, and the per-tenant ConfigMaps of the earlier layout: of
// each tenant it owns, the newest history.
func (s *ConfigMapStore) Load(ctx context.Context) (map[string][]byte, error) {
	list := &corev1.ConfigMapList{}
	if err := s.Reader.List(ctx, list, client.InNamespace(s.Namespace), client.MatchingLabels{historyLabelComponent: historyComponent}); err != nil {
		return nil, fmt.Errorf("list uptime history shards: %w", err)
	}
	out := map[string][]byte{}
	newest := map[string]int64{}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = map[string][]byte{}
	for _, cm := range list.Items {
		if set, n, ok := parseShardName(cm.Name); ok && set == s.Set {
			s.written[cm.Name] = encodeShard(cm.BinaryData)
			s.shards = max(s.shards, n)
		}
		for tenant, data := range cm.BinaryData {
			if s.Owns != nil && !s.Owns(tenant) {
				continue
			}
			// Within a set a tenant is in one shard; across sets, the newest history is the one
			// a manager kept on probing.
			n := newestBucketOf(data)
			if seen, ok := newest[tenant]; ok && seen >= n {
				continue
			}
			out[tenant], newest[tenant] = data, n
		}
	}
	legacy := &corev1.ConfigMapList{}
	if err := s.Reader.List(ctx, legacy, client.InNamespace(s.Namespace), client.HasLabels{"tenancy.tenantops.io/tenant"}); err != nil {
		return nil, fmt.Errorf("list per-tenant uptime histories: %w", err)
	}
	for _, cm := range legacy.Items {
		tenant := cm.Labels["tenancy.tenantops.io/tenant"]
		data, ok := cm.BinaryData["history"]
		if !ok || cm.Name != "tenant-"+tenant+legacySuffix || (s.Owns != nil && !s.Owns(tenant)) {
			continue
		}
		if _, newer := out[tenant]; !newer {
			out[tenant] = data
		}
		s.legacy = append(s.legacy, cm.Name)
	}
	return out, nil
}

// Save writes the shards whose content changed, and removes shards of an earlier count and the
// per-tenant ConfigMaps of the earlier layout once the new shards hold everything.
func (s *ConfigMapStore) Save(ctx context.Context, histories map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	shards := max(s.shards, minShards)
	for {
		split := splitShards(histories, shards)
		if largest(split) <= maxShardBytes || shards >= 1<<16 {
			return s.write(ctx, shards, split)
		}
		shards *= 2
	}
}

func (s *ConfigMapStore) write(ctx context.Context, shards int, split []map[string][]byte) error {
	if s.written == nil {
		s.written = map[string][]byte{}
	}
	names := map[string]bool{}
	for i, data := range split {
		name := shardName(s.Set, shards, i)
		names[name] = true
		encoded := encodeShard(data)
		if old, ok := s.written[name]; ok && bytes.Equal(old, encoded) {
			continue
		}
		cm := corev1ac.ConfigMap(name, s.Namespace).
			WithLabels(map[string]string{historyLabelName: "tenant-operator", historyLabelComponent: historyComponent}).
			WithBinaryData(data)
		if err := s.Client.Apply(ctx, cm, s.Owner, client.ForceOwnership); err != nil {
			return fmt.Errorf("save uptime history shard %s: %w", name, err)
		}
		s.written[name] = encoded
	}
	s.shards = shards
	var stale []string
	for name := range s.written {
		if !names[name] {
			stale = append(stale, name)
		}
	}
	for _, name := range append(stale, s.legacy...) {
		cm := &corev1.ConfigMap{}
		cm.Name, cm.Namespace = name, s.Namespace
		if err := s.Client.Delete(ctx, cm); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old uptime history %s: %w", name, err)
		}
		delete(s.written, name)
	}
	s.legacy = nil
	return nil
}

// splitShards puts each tenant's history into the shard its name hashes to.
func splitShards(histories map[string][]byte, shards int) []map[string][]byte {
	out := make([]map[string][]byte, shards)
	for i := range out {
		out[i] = map[string][]byte{}
	}
	for name, data := range histories {
		h := fnv.New32a()
		_, _ = h.Write([]byte(name))
		out[h.Sum32()%uint32(shards)][name] = data
	}
	return out
}

func largest(split []map[string][]byte) int {
	most := 0
	for _, shard := range split {
		size := 0
		for name, data := range shard {
			size += len(name) + len(data)
		}
		most = max(most, size)
	}
	return most
}

// encodeShard is a shard's content in a canonical form, to compare with what was written.
func encodeShard(data map[string][]byte) []byte {
	var buf bytes.Buffer
	for _, name := range sortedKeys(data) {
		buf.WriteString(name)
		buf.WriteByte(0)
		buf.WriteString(strconv.Itoa(len(data[name])))
		buf.WriteByte(0)
		buf.Write(data[name])
	}
	return buf.Bytes()
}

func sortedKeys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}

// shardName is uptime-history-<count>-<index>, or uptime-history-<set>-<count>-<index> for a
// manager that is one shard of several: the count in the name lets a restart read shards of any
// count, and a change of count replace them all; the set keeps each manager to its own.
func shardName(set string, shards, i int) string {
	if set == "" {
		return fmt.Sprintf("uptime-history-%d-%d", shards, i)
	}
	return fmt.Sprintf("uptime-history-%s-%d-%d", set, shards, i)
}

// parseShardName tells the set and the count of a shard by its name.
func parseShardName(name string) (set string, count int, ok bool) {
	rest, ok := strings.CutPrefix(name, "uptime-history-")
	if !ok {
		return "", 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) < 2 {
		return "", 0, false
	}
	count, err := strconv.Atoi(parts[len(parts)-2])
	if _, errIndex := strconv.Atoi(parts[len(parts)-1]); err != nil || errIndex != nil {
		return "", 0, false
	}
	return strings.Join(parts[:len(parts)-2], "-"), count, true
}
