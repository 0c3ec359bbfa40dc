package agent

import (
	"context"
	"fmt"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/source"
)

// A burst of syncs asking one shared source costs at most two fetches, and
// every caller gets a fetch that started after it asked.
func TestSharedSourceCoalescesFetches(t *testing.T) {
	var started atomic.Int64
	release := make(chan struct{})
	sg := &sharedGit{ctx: context.Background(), fetch: func(context.Context) (*source.Artifact, error) {
		n := started.Add(1)
		if n == 1 {
			<-release // the first fetch is slow: everyone else arrives meanwhile
		}
		return &source.Artifact{Revision: fmt.Sprintf("fetch-%d", n)}, nil
	}}
	first := make(chan string, 1)
	go func() {
		art, _ := sg.Fetch(context.Background())
		first <- art.Revision
	}()
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg gosync.WaitGroup
	results := make(chan string, 99)
	for i := 0; i < 99; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			art, err := sg.Fetch(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			results <- art.Revision
		}()
	}
	// Let all 99 queue up behind the running fetch, then let it finish.
	deadline := time.Now().Add(time.Minute)
	for {
		sg.mu.Lock()
		queued := sg.next != nil && sg.next.callers == 99
		sg.mu.Unlock()
		if queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the callers never queued")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	if got := <-first; got != "fetch-1" {
		t.Errorf("the first caller got %s", got)
	}
	for r := range results {
		if r != "fetch-2" {
			t.Errorf("a caller that arrived during fetch 1 got %s, want fetch-2 (a fetch that started after it asked)", r)
		}
	}
	if n := started.Load(); n != 2 {
		t.Errorf("%d fetches for 100 callers, want 2", n)
	}
}

// Syncs with the same repository, ref and credentials share one source;
// another ref gets its own; the last release stops it.
func TestSourcesAreSharedByKey(t *testing.T) {
	ss := newSources(t.TempDir())
	made := 0
	newGit := func(dir string) (*source.Git, error) {
		made++
		return source.NewGit(source.GitOptions{URL: "https://git.example.com/org/app.git", Ref: source.Ref{Branch: "main"}, Dir: dir})
	}
	src := config.Source{URL: "https://git.example.com/org/app.git", Ref: source.Ref{Branch: "main"}, Timeout: time.Minute}
	a, err := ss.acquire(src, newGit)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ss.acquire(src, newGit)
	if err != nil {
		t.Fatal(err)
	}
	// One user reports the shared counters; when it leaves, another does.
	if !a.reports("a") || a.reports("b") {
		t.Error("the first user to ask does not report alone")
	}
	other := src
	other.Ref = source.Ref{Branch: "dev"}
	c, err := ss.acquire(other, newGit)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a == c || made != 2 {
		t.Fatalf("shared %v, separate %v, made %d", a == b, a != c, made)
	}
	a.release("a")
	if _, ok := ss.shared[a.key]; !ok {
		t.Error("released while a user remains")
	}
	if !b.reports("b") {
		t.Error("the remaining user does not take over reporting")
	}
	b.release("b")
	if _, ok := ss.shared[a.key]; ok {
		t.Error("kept after its last user left")
	}
	c.release("c")
}
