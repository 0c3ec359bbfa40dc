package agent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/health"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{6, 160 * time.Second},
		{7, 5 * time.Minute}, // 320 s capped
		{100, 5 * time.Minute},
	} {
		if got := Backoff(tc.failures, 5*time.Second, 5*time.Minute); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
}

func TestJitter(t *testing.T) {
	for _, tc := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 90 * time.Second},
		{0.5, 100 * time.Second},
		{0.999999, 110 * time.Second},
	} {
		got := Jitter(100*time.Second, 0.1, tc.r)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("Jitter(100s, 0.1, %v) = %s, want %s", tc.r, got, tc.want)
		}
	}
}

// A burst of triggers leaves exactly one pending reconcile.
func TestTriggersCoalesce(t *testing.T) {
	r := &runner{trigger: make(chan struct{}, 1)}
	for i := 0; i < 100; i++ {
		r.poke()
	}
	if n := len(r.trigger); n != 1 {
		t.Fatalf("%d pending triggers after a burst, want 1", n)
	}
	<-r.trigger
	if n := len(r.trigger); n != 0 {
		t.Fatalf("%d pending triggers after consuming one", n)
	}
	r.poke()
	if n := len(r.trigger); n != 1 {
		t.Fatalf("a trigger after the burst was lost")
	}
}

// Only changes that can change the configuration cause a reload: the file
// itself and kubelet's ..data swaps of a mounted ConfigMap.
func TestReloadRelevantChanges(t *testing.T) {
	a := &Agent{opts: Options{ConfigPath: "/etc/tether/config/tether.yaml"}, log: slog.New(slog.DiscardHandler)}
	for name, want := range map[string]bool{
		"/etc/tether/config/tether.yaml":              true,
		"/etc/tether/config/..data":                   true,
		"/etc/tether/config/..data_tmp":               true,
		"/etc/tether/config/..2026_11_25_01_02_03.12": true,
		"/etc/tether/config/other.yaml":               false,
		"/etc/tether/config/tether.yaml.swp":          false,
	} {
		if got := a.relevant(name); got != want {
			t.Errorf("relevant(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestSameConfig(t *testing.T) {
	base := &config.Config{Syncs: []config.Sync{{Name: "a", Path: "x"}, {Name: "b"}}}
	same := &config.Config{Syncs: []config.Sync{{Name: "a", Path: "x"}, {Name: "b"}}}
	changed := &config.Config{Syncs: []config.Sync{{Name: "a", Path: "y"}, {Name: "b"}}}
	fewer := &config.Config{Syncs: []config.Sync{{Name: "a", Path: "x"}}}
	if !sameConfig(base, same) {
		t.Error("equal configurations differ")
	}
	if sameConfig(base, changed) || sameConfig(base, fewer) {
		t.Error("different configurations are the same")
	}
}

func TestSyncStatusFailing(t *testing.T) {
	for _, tc := range []struct {
		s    SyncStatus
		want bool
	}{
		{SyncStatus{}, false},
		{SyncStatus{LastAttempt: &Attempt{Outcome: "success"}, Health: health.Healthy}, false},
		{SyncStatus{LastAttempt: &Attempt{Outcome: "skipped"}, Health: health.Progressing}, false},
		{SyncStatus{LastAttempt: &Attempt{Outcome: "failure"}}, true},
		{SyncStatus{LastAttempt: &Attempt{Outcome: "success"}, Health: health.Degraded}, true},
		{SyncStatus{Health: health.Failed}, true},
	} {
		if got := tc.s.Failing(); got != tc.want {
			t.Errorf("%+v: Failing() = %v, want %v", tc.s, got, tc.want)
		}
	}
}
