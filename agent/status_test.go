package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tsync "github.com/tether-gitops/tether/sync"
)

func TestWithAttemptKeepsTheNewestAndSharesNothing(t *testing.T) {
	var history []Attempt
	var snapshots [][]Attempt
	for i := range HistorySize + 5 {
		history = withAttempt(history, Attempt{Revision: fmt.Sprint(i)})
		snapshots = append(snapshots, history)
	}
	if len(history) != HistorySize {
		t.Fatalf("%d attempts kept, want %d", len(history), HistorySize)
	}
	if history[0].Revision != fmt.Sprint(HistorySize+4) || history[HistorySize-1].Revision != "5" {
		t.Errorf("kept %s ... %s, want the newest first", history[0].Revision, history[HistorySize-1].Revision)
	}
	// A snapshot handed out earlier never changes.
	for i, s := range snapshots {
		if s[0].Revision != fmt.Sprint(i) {
			t.Errorf("snapshot %d changed: newest is %s", i, s[0].Revision)
		}
	}
}

func TestPhasesOf(t *testing.T) {
	for _, tc := range []struct {
		phases map[string]time.Duration
		want   string
	}{
		{nil, ""},
		{map[string]time.Duration{"health": 2 * time.Second, "build": 1500 * time.Microsecond, "apply": time.Second, "plan": 20 * time.Millisecond},
			"build=2ms plan=20ms apply=1s health=2s"},
		{map[string]time.Duration{"zeta": time.Millisecond, "build": time.Second, "alpha": time.Second}, "build=1s alpha=1s zeta=1ms"},
	} {
		var got []string
		for _, p := range phasesOf(&tsync.Result{Phases: tc.phases}) {
			got = append(got, p.Phase+"="+p.Duration)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("phasesOf(%v) = %v, want %s", tc.phases, got, tc.want)
		}
	}
	if phasesOf(nil) != nil {
		t.Error("phases of no result")
	}
}
