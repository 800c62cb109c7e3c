package manager

import "testing"

func TestSoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		wantLimit int64
		wantOK    bool
		wantErr   bool
	}{
		{"a 1 GiB container: 90 %", map[string]string{MemoryLimitEnv: "1073741824"}, 966367641, true, false},
		{"a 512 MiB container, the chart's default", map[string]string{MemoryLimitEnv: "536870912"}, 483183820, true, false},
		{"GOMEMLIMIT set by hand stands", map[string]string{MemoryLimitEnv: "1073741824", "GOMEMLIMIT": "800MiB"}, 0, false, false},
		{"no limit given", map[string]string{}, 0, false, false},
		{"not bytes", map[string]string{MemoryLimitEnv: "1Gi"}, 0, false, true},
		{"zero", map[string]string{MemoryLimitEnv: "0"}, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, ok, err := SoftMemoryLimit(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || ok != tc.wantOK || limit != tc.wantLimit {
				t.Errorf("SoftMemoryLimit = %d, %v, %v; want %d, %v, error %v", limit, ok, err, tc.wantLimit, tc.wantOK, tc.wantErr)
			}
		})
	}
}
