package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeTool is a tool that ran every step it runs with the given wall
// times (zero: not run), requests and writes.
func fakeTool(name string, walls [4]time.Duration, requests, writes [4]int) *tool {
	t := &tool{name: name, version: name + " 1.0", runs: always}
	for i, w := range walls {
		if w > 0 {
			t.results[i] = stepResult{ran: true, wall: w, rssKiB: 100 << 10, counts: requestCounts{
				Requests: requests[i], Writes: writes[i],
				ByVerb: map[string]int{"patch": writes[i], "get (dry-run)": requests[i] - writes[i]},
			}}
		}
	}
	return t
}

func TestReportTargets(t *testing.T) {
	s := time.Second
	su := suite{set: defaultSet(), tools: []*tool{
		fakeTool("tether", [4]time.Duration{2 * s, s / 10, s / 10, s}, [4]int{2025, 8, 11, 600}, [4]int{1002, 0, 1, 502}),
		fakeTool("kubectl", [4]time.Duration{3 * s, 2 * s, 2 * s, 100 * s}, [4]int{1009, 1009, 1009, 1009}, [4]int{1003, 1003, 1003, 1003}),
		fakeTool("Flux", [4]time.Duration{43 * s, 26 * s, 26 * s, 26 * s}, [4]int{2999, 2000, 2001, 2000}, [4]int{1001, 0, 1, 500}),
		fakeTool("raw floor", [4]time.Duration{s, 0, 0, s / 2}, [4]int{1001, 0, 0, 500}, [4]int{1001, 0, 0, 500}),
		fakeTool("cli-utils", [4]time.Duration{300 * s}, [4]int{4616}, [4]int{1002}),
	}}
	var out bytes.Buffer
	(&bench{}).report(&out, su, nil, nil)
	got := out.String()
	for _, want := range []string{
		"PASS  unchanged re-sync writes nothing: 0 writes",
		"PASS  unchanged re-sync sends at most 10 requests: 8 requests",
		"PASS  unchanged re-sync at most 0.2x kubectl's time: 0.050x (0.10s vs 2.00s)",
		"MISS  one ConfigMap changed takes at most 1 dry run: 10 dry runs",
		"MISS  cold apply at most 1.5x raw floor's time: 2.00x (2.00s vs 1.00s)",
		"PASS  cold apply faster than kubectl: 0.67x (2.00s vs 3.00s)",
		"MISS  prune of 500 at most 1.5x raw floor's time: 2.00x (1.00s vs 0.50s)",
		"PASS  cold apply at least 10x faster than the stock cli-utils Applier: 0.007x",
		"n/a   5,000 objects, 100 syncs and the 4,000-document build: not run",
		"1 cold apply (1,001 objects)  2.00s, 2,025, 1,002",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log("\n" + got)
	}
}

func TestTargetNotMeasured(t *testing.T) {
	got := target("x", func() (bool, string, bool) { return true, "fine", false })
	if !strings.HasPrefix(got, "n/a") {
		t.Errorf("an unmeasured target printed %q", got)
	}
}

func TestCountDocuments(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a: 1\n", 1},
		{"a: 1\n---\nb: 2\n", 2},
		{"---\na: 1\n---\nb: 2\n", 2},
		{"a: |\n  ---x\n---\nb: 2\n", 2},
	} {
		if got := countDocuments([]byte(tc.in)); got != tc.want {
			t.Errorf("countDocuments(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestStale(t *testing.T) {
	dir := t.TempDir()
	set := objectSet{configMaps: 3}
	if err := set.write(dir, "ns"); err != nil {
		t.Fatal(err)
	}
	objs, err := readFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != set.total() {
		t.Fatalf("read %d objects, want %d", len(objs), set.total())
	}
	record := dir + "/record.json"
	if err := writeRecord(record, objs); err != nil {
		t.Fatal(err)
	}
	old, err := readRecord(record)
	if err != nil {
		t.Fatal(err)
	}
	if got := stale(old, objs); len(got) != 0 {
		t.Errorf("nothing removed, yet stale = %v", got)
	}
	gone := stale(old, objs[:len(objs)-1])
	if len(gone) != 1 || refOf(gone[0]) != refOf(objs[len(objs)-1]) {
		t.Errorf("one object removed, stale = %v", gone)
	}
}

func TestScaleReport(t *testing.T) {
	s := time.Second
	sc := &scaleResults{
		large: suite{set: largeSet(), tools: []*tool{
			fakeTool("tether", [4]time.Duration{10 * s, s, s, 3 * s}, [4]int{10029, 9, 11, 1030}, [4]int{5001, 0, 1, 1002}),
			fakeTool("raw floor", [4]time.Duration{6 * s, 0, 0, 2 * s}, [4]int{5000, 0, 0, 1000}, [4]int{5000, 0, 0, 1000}),
		}},
		agent: agentAtScale{objects: 5000, wall: 20 * s, rssKiB: 140 << 10, peakKiB: 160 << 10},
		many: manySyncs{syncs: 100, objectsEach: 50, first: 90 * s, push: 30 * s, webhookTriggered: 100,
			idle: idleRun{window: time.Minute, polls: 6, skipped: 600, cpu: 3 * s, counts: requestCounts{Requests: 61,
				ByVerb:     map[string]int{"update": 30, "get": 30, "watch": 1},
				ByResource: map[string]int{"update leases": 30, "get leases": 30, "watch configmaps": 1}}},
			rssKiB: 200 << 10, peakKiB: 250 << 10},
		build: buildAtScale{documents: 4000, kustomizeVersion: "v5.7.1", identical: true,
			tether: buildRun{wall: 80 * s, rssKiB: 120 << 10, cpu: 90 * s}, kustomize: buildRun{wall: 160 * s, rssKiB: 100 << 10, cpu: 150 * s}},
	}
	var out bytes.Buffer
	scaleTargets(&out, sc)
	sc.report(&out)
	got := out.String()
	for _, want := range []string{
		"PASS  5,000 objects: peak RSS of tether sync --once at most 150 MiB: 100.0 MiB",
		"MISS  5,000 objects: peak RSS of the agent at most 150 MiB: 160.0 MiB (after the sync 140.0 MiB)",
		"PASS  100 syncs x 50 objects: peak RSS of the agent at most 300 MiB: 250.0 MiB; push to all applied 30.00s, 61.0 requests per minute idle",
		"PASS  build of 4,000 documents at most 1.0x the kustomize CLI's time: 0.50x (1m20.0s vs 2m40.0s)",
		"requests while idle:                        61.0 per minute (61 in 1m00.0s): 0 LISTs, 0 dry runs, 1 watch request, 60 for the leader lease",
		"(get leases 30, update leases 30, watch configmaps 1); 6 polls (ref listings), 600 skipped reconciles, agent CPU 3.00s",
		"kustomize v5.7.1 build  2m40.0s",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log("\n" + got)
	}
}

func TestTetherSelfReport(t *testing.T) {
	out := "create     ConfigMap/a/b\nsync bench at sha256:abc: 1 create, 1000 unchanged; 1 writes, 15 requests, 1.2s (build 0.4s, plan 0.5s)\n"
	want := "1 create, 1000 unchanged; 1 writes, 15 requests by its own count, 1.2s (build 0.4s, plan 0.5s)"
	if got := tetherSelfReport(out); got != want {
		t.Errorf("tetherSelfReport = %q, want %q", got, want)
	}
	if got := tetherSelfReport("no summary"); got != "" {
		t.Errorf("tetherSelfReport of no summary = %q", got)
	}
}
