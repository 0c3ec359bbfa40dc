package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Pager serves the tag listing of the distribution API (GET /v2/ and
// /v2/NAME/tags/list) over generated tags, in pages with Link headers, as
// the registries that page do (Debian's docker-registry 2.8 ignores n and
// last and answers every tag at once). Tags are made on the fly from their
// index, so 100,000 of them cost the test nothing to hold. Use it with
// httptest.NewServer.
type Pager struct {
	// Repository is the one repository served (NAME).
	Repository string
	// MaxPage caps n; a request without n gets this many.
	MaxPage int

	mu   sync.Mutex
	tags func(i int) string
	n    int

	// Pages counts tag pages served; Requests every request.
	Pages, Requests atomic.Int64
}

// SetTags makes the repository list n tags, tag(0) to tag(n-1), in that
// (lexical) order, as registries list them.
func (p *Pager) SetTags(n int, tag func(i int) string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n, p.tags = n, tag
}

// ServeHTTP answers the registry API's tag list (paged, as SetTags set
// it) and counts every request.
func (p *Pager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.Requests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read only", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/v2/" {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.URL.Path != "/v2/"+p.Repository+"/tags/list" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`)
		return
	}
	p.mu.Lock()
	total, tag := p.n, p.tags
	p.mu.Unlock()
	pageSize := p.MaxPage
	if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && n > 0 && n < pageSize {
		pageSize = n
	}
	// The tags are in lexical order: the page starts after last.
	start := 0
	if last := r.URL.Query().Get("last"); last != "" {
		lo, hi := 0, total
		for lo < hi {
			mid := (lo + hi) / 2
			if strings.Compare(tag(mid), last) <= 0 {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		start = lo
	}
	end := min(start+pageSize, total)
	page := make([]string, 0, end-start)
	for i := start; i < end; i++ {
		page = append(page, tag(i))
	}
	if end < total {
		next := url.Values{"n": {strconv.Itoa(pageSize)}, "last": {tag(end - 1)}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	p.Pages.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": p.Repository, "tags": page})
}
