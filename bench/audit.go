package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// auditLog reads the API server's JSON audit log (one event per line) to
// count one user's requests in a time window.
type auditLog struct {
	path string
}

// auditEvent holds the fields of an audit.k8s.io/v1 Event the bench reads.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource string `json:"resource"`
	} `json:"objectRef"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	ResponseStatus           *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// requestCounts is what one user sent in one window.
type requestCounts struct {
	// Requests counts every request (distinct audit IDs).
	Requests int
	// Writes counts create, update, patch, delete and deletecollection
	// requests that were not dry runs (requestURI without dryRun=All).
	Writes int
	// Failed counts requests answered with a status code of 400 or more.
	Failed int
	// ByVerb counts requests per verb; dry runs count under "VERB (dry-run)".
	ByVerb map[string]int
	// ByResource counts requests per verb and resource: "get leases".
	ByResource map[string]int
}

// offset is the log's current size: where events after this moment start.
func (l *auditLog) offset() (int64, error) {
	fi, err := os.Stat(l.path)
	if err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	return fi.Size(), nil
}

// count reads the log from offset to its end and counts the requests of user
// received within [from, to]. Each request is counted once, whichever of its
// stages (ResponseStarted, ResponseComplete, Panic) made it into the log.
func (l *auditLog) count(offset int64, user string, from, to time.Time) (requestCounts, error) {
	out := requestCounts{ByVerb: map[string]int{}, ByResource: map[string]int{}}
	f, err := os.Open(l.path)
	if err != nil {
		return out, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return out, fmt.Errorf("audit log: %w", err)
	}
	seen := map[string]bool{}
	failed := map[string]bool{}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			// A partial last line is an event still being written: it
			// belongs to whoever is still talking, not to the window.
			break
		}
		if err != nil {
			return out, fmt.Errorf("audit log: %w", err)
		}
		// Cheap filter before decoding: most lines are other users'.
		if !strings.Contains(string(line), `"username":"`+user+`"`) {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return out, fmt.Errorf("audit log: decoding an event: %w", err)
		}
		if ev.User.Username != user || ev.RequestReceivedTimestamp.Before(from) || ev.RequestReceivedTimestamp.After(to) {
			continue
		}
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code >= 400 && !failed[ev.AuditID] {
			failed[ev.AuditID] = true
			out.Failed++
		}
		if seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		out.Requests++
		verb := ev.Verb
		if isDryRun(ev.RequestURI) {
			verb += " (dry-run)"
		} else if isWrite(ev.Verb) {
			out.Writes++
		}
		out.ByVerb[verb]++
		resource := "(no resource)"
		if ev.ObjectRef != nil && ev.ObjectRef.Resource != "" {
			resource = ev.ObjectRef.Resource
		}
		out.ByResource[verb+" "+resource]++
	}
	return out, nil
}

// dryRuns counts the dry-run requests.
func (c requestCounts) dryRuns() int {
	n := 0
	for verb, count := range c.ByVerb {
		if strings.HasSuffix(verb, " (dry-run)") {
			n += count
		}
	}
	return n
}

// isWrite reports whether verb changes what is stored.
func isWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// isDryRun reports whether a request URI asks for a dry run.
func isDryRun(requestURI string) bool {
	u, err := url.Parse(requestURI)
	if err != nil {
		return strings.Contains(requestURI, "dryRun=All")
	}
	for _, v := range u.Query()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}

// verbSummary is "patch 1001, get 12, ..." by descending count.
func (c requestCounts) verbSummary() string { return summary(c.ByVerb) }

// resourceSummary is "update leases 30, get leases 30, ..." by descending
// count.
func (c requestCounts) resourceSummary() string { return summary(c.ByResource) }

// summary is "key n, key n, ..." by descending count, then key.
func summary(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// countWhile counts sa's requests in the audit log while do runs.
func (b *bench) countWhile(ctx context.Context, sa *cluster.ServiceAccount, do func() error) (requestCounts, error) {
	offset, err := b.audit.offset()
	if err != nil {
		return requestCounts{}, err
	}
	from := time.Now()
	if err := do(); err != nil {
		return requestCounts{}, err
	}
	to := time.Now()
	select {
	case <-ctx.Done():
		return requestCounts{}, ctx.Err()
	case <-time.After(auditGrace):
	}
	return b.audit.count(offset, saUser(sa), from, to)
}
