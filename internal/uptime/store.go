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
type ConfigMapStore struct {
	// Client writes the shards; Reader reads them (the API server directly: they are not cached).
	Client    client.Client
	Reader    client.Reader
	Namespace string
	Owner     client.FieldOwner

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

// Load reads every shard, and the per-tenant ConfigMaps of the earlier layout.
func (s *ConfigMapStore) Load(ctx context.Context) (map[string][]byte, error) {
	list := &corev1.ConfigMapList{}
	if err := s.Reader.List(ctx, list, client.InNamespace(s.Namespace), client.MatchingLabels{historyLabelComponent: historyComponent}); err != nil {
		return nil, fmt.Errorf("list uptime history shards: %w", err)
	}
	out := map[string][]byte{}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = map[string][]byte{}
	for _, cm := range list.Items {
		maps.Copy(out, cm.BinaryData)
		s.written[cm.Name] = encodeShard(cm.BinaryData)
		if n, ok := shardCount(cm.Name); ok && n > s.shards {
			s.shards = n
		}
	}
	legacy := &corev1.ConfigMapList{}
	if err := s.Reader.List(ctx, legacy, client.InNamespace(s.Namespace), client.HasLabels{"tenancy.tenantops.io/tenant"}); err != nil {
		return nil, fmt.Errorf("list per-tenant uptime histories: %w", err)
	}
	for _, cm := range legacy.Items {
		tenant := cm.Labels["tenancy.tenantops.io/tenant"]
		data, ok := cm.BinaryData["history"]
		if !ok || cm.Name != "tenant-"+tenant+legacySuffix {
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
		name := shardName(shards, i)
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

// shardName is uptime-history-<count>-<index>: the count in the name lets a restart read shards
// of any count, and a change of count replace them all.
func shardName(shards, i int) string { return fmt.Sprintf("uptime-history-%d-%d", shards, i) }

func shardCount(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "uptime-history-")
	if !ok {
		return 0, false
	}
	count, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(count)
	return n, err == nil
}
