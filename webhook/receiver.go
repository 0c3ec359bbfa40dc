package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Paths and headers of the endpoints. Senders are configured with these
// (GitHub's are fixed by GitHub), so changing one breaks existing webhooks.
const (
	// GitHubPath receives GitHub push events.
	GitHubPath = "/hooks/github"
	// GenericPath receives {"repository": url} or {"sync": name}.
	GenericPath = "/hooks/generic"

	// GitHubEventHeader names the GitHub event ("push", "ping", ...).
	GitHubEventHeader = "X-GitHub-Event"
	// GitHubSignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
	GitHubSignatureHeader = "X-Hub-Signature-256"
	// GitHubDeliveryHeader identifies a delivery; it is logged.
	GitHubDeliveryHeader = "X-GitHub-Delivery"
	// SignatureHeader carries the generic endpoint's signature, in the
	// same form as GitHubSignatureHeader.
	SignatureHeader = "X-Tether-Signature"
)

// Defaults for Options.
const (
	// DefaultMaxBody is the largest body read, in bytes. Push events are
	// usually a few kilobytes; one listing many commits that touch many
	// files can exceed it, is refused with 413, and polling catches up.
	DefaultMaxBody = 1 << 20
	// DefaultRateLimit is the requests per second accepted.
	DefaultRateLimit = 10.0
	// DefaultBurst is the requests accepted at once.
	DefaultBurst = 20
)

// Target is a sync that webhooks may trigger.
type Target struct {
	// Sync names the sync passed to Options.Trigger.
	Sync string
	// RepoURL is the repository the sync follows, in any form NormalizeURL
	// reads; empty for a sync that can be triggered by name only.
	RepoURL string
	// Secret is the HMAC-SHA256 key deliveries for this sync are signed
	// with. A target without one is never triggered.
	Secret []byte
}

// Options configure a Receiver.
type Options struct {
	// Trigger asks for an immediate reconcile of a sync. It is called from
	// the request's goroutine and must not block (send to a channel of
	// size one with select/default). nil does nothing.
	Trigger func(sync string)
	// Logger receives one line per delivery; nil discards them.
	Logger *slog.Logger
	// MaxBody bounds the request body in bytes; default DefaultMaxBody.
	MaxBody int64
	// RateLimit is the requests per second the receiver accepts, over all
	// senders; default DefaultRateLimit.
	RateLimit float64
	// Burst is the requests accepted at once; default DefaultBurst.
	Burst int
	// Now is the clock of the rate limiter; default time.Now.
	Now func() time.Time
}

// Receiver is the webhook http.Handler. Its targets can be replaced while
// it serves.
type Receiver struct {
	trigger func(string)
	log     *slog.Logger
	maxBody int64
	limiter *rate.Limiter
	now     func() time.Time
	targets atomic.Pointer[index]
}

// index is an immutable lookup of the targets.
type index struct {
	byURL  map[string][]Target // NormalizeURL(RepoURL) → targets
	byName map[string]Target
}

// New returns a Receiver with no targets.
func New(opts Options) *Receiver {
	if opts.Trigger == nil {
		opts.Trigger = func(string) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Receiver{
		trigger: opts.Trigger,
		log:     opts.Logger,
		maxBody: opts.MaxBody,
		limiter: rate.NewLimiter(rate.Limit(opts.RateLimit), opts.Burst),
		now:     opts.Now,
	}
	r.targets.Store(&index{})
	return r
}

// SetTargets replaces the targets. It is safe to call while requests are
// served (on a configuration reload); a request sees either the old or the
// new set, never a mix. The secrets are copied.
func (r *Receiver) SetTargets(targets []Target) {
	idx := &index{byURL: map[string][]Target{}, byName: map[string]Target{}}
	for _, t := range targets {
		if t.Sync == "" {
			continue
		}
		t.Secret = slices.Clone(t.Secret)
		if len(t.Secret) == 0 {
			r.log.Warn("webhook target has no secret and cannot be triggered", "sync", t.Sync)
		}
		idx.byName[t.Sync] = t
		if key := NormalizeURL(t.RepoURL); key != "" {
			idx.byURL[key] = append(idx.byURL[key], t)
		}
	}
	r.targets.Store(idx)
}

// ServeHTTP serves GitHubPath and GenericPath; see the package
// documentation for the protocol.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var handle func(req *http.Request, body []byte, sig []byte) outcome
	endpoint := ""
	switch req.URL.Path {
	case GitHubPath:
		handle, endpoint = r.github, "github"
	case GenericPath:
		handle, endpoint = r.generic, "generic"
	default:
		http.NotFound(w, req)
		return
	}
	log := r.log.With("endpoint", endpoint, "remote", req.RemoteAddr)
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "use POST"})
		return
	}
	if ok, wait := r.allow(); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		log.Warn("webhook refused", "outcome", "rate limited")
		writeJSON(w, http.StatusTooManyRequests, errorResponse{Error: "too many requests"})
		return
	}
	body, err := r.readBody(w, req)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook refused", "outcome", "body too large")
			writeJSON(w, http.StatusRequestEntityTooLarge, errorResponse{Error: "body too large"})
			return
		}
		log.Warn("webhook refused", "outcome", "body unreadable")
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "could not read the body"})
		return
	}
	header := SignatureHeader
	if endpoint == "github" {
		header = GitHubSignatureHeader
	}
	sig, err := parseSignature(req.Header.Get(header))
	if err != nil {
		log.Warn("webhook refused", "outcome", "unsigned", "reason", err.Error())
		writeJSON(w, http.StatusUnauthorized, errorResponse{Error: err.Error() + " (" + header + ")"})
		return
	}
	o := handle(req, body, sig)
	o.log(log)
	if o.status == http.StatusOK {
		for _, name := range o.triggered {
			r.trigger(name)
		}
	}
	if o.clientError != "" {
		writeJSON(w, o.status, errorResponse{Error: o.clientError})
		return
	}
	writeJSON(w, o.status, response{Triggered: append([]string{}, o.triggered...)})
}

// outcome is what a handler decided about one delivery.
type outcome struct {
	status int
	// triggered are the syncs to trigger (status 200 only).
	triggered []string
	// clientError is the answer's error; its text never names a
	// repository or sync. The status does tell a sender that signs with the
	// wrong secret for a followed repository (401) from one for a
	// repository nobody follows (202): repository URLs are not secrets, and
	// the 401 is what shows a misconfigured secret in the git host's
	// delivery log.
	clientError string
	// the rest is for the log only.
	event, delivery, result string
	candidates              []string
}

func (o outcome) log(log *slog.Logger) {
	attrs := []any{"status", o.status, "outcome", o.result}
	if o.event != "" {
		attrs = append(attrs, "event", o.event)
	}
	if o.delivery != "" {
		attrs = append(attrs, "delivery", o.delivery)
	}
	if len(o.triggered) > 0 {
		attrs = append(attrs, "syncs", o.triggered)
	} else if len(o.candidates) > 0 {
		attrs = append(attrs, "syncs", o.candidates)
	}
	if o.status >= 400 {
		log.Warn("webhook refused", attrs...)
		return
	}
	log.Info("webhook", attrs...)
}

// allow takes a token from the rate limiter, or says how long until one is
// available.
func (r *Receiver) allow() (bool, time.Duration) {
	now := r.now()
	if r.limiter.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - r.limiter.TokensAt(now)
	return false, time.Duration(missing / float64(r.limiter.Limit()) * float64(time.Second))
}

// readBody reads at most maxBody bytes; more is an *http.MaxBytesError.
func (r *Receiver) readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	if req.ContentLength > r.maxBody {
		return nil, &http.MaxBytesError{Limit: r.maxBody}
	}
	return io.ReadAll(http.MaxBytesReader(w, req.Body, r.maxBody))
}

// parseSignature reads "sha256=<64 hex>".
func parseSignature(h string) ([]byte, error) {
	if h == "" {
		return nil, errors.New("missing signature")
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(h), "sha256=")
	if !ok {
		return nil, errors.New("malformed signature: want sha256=<hex>")
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return nil, errors.New("malformed signature: want sha256=<hex>")
	}
	return sig, nil
}

// Sign returns the signature header value for body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret. Senders (and tests) use it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// verified returns the names of the candidates whose secret made sig, in
// order, each once. The comparison is constant-time.
func verified(candidates []Target, body, sig []byte) []string {
	var names []string
	for _, t := range candidates {
		if len(t.Secret) == 0 || slices.Contains(names, t.Sync) {
			continue
		}
		mac := hmac.New(sha256.New, t.Secret)
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), sig) {
			names = append(names, t.Sync)
		}
	}
	return names
}

// decide is the common end of both endpoints: nothing matched (202),
// nothing verified (401), or the verified syncs (200).
func decide(o outcome, candidates []Target, body, sig []byte) outcome {
	for _, t := range candidates {
		if !slices.Contains(o.candidates, t.Sync) {
			o.candidates = append(o.candidates, t.Sync)
		}
	}
	if len(candidates) == 0 {
		o.status, o.result = http.StatusAccepted, "no matching sync"
		return o
	}
	names := verified(candidates, body, sig)
	if len(names) == 0 {
		o.status, o.result, o.clientError = http.StatusUnauthorized, "invalid signature", "invalid signature"
		return o
	}
	slices.Sort(names)
	o.status, o.result, o.triggered = http.StatusOK, "triggered", names
	return o
}

// githubPush is the part of a GitHub push (or ping) event that matters.
type githubPush struct {
	Ref        string `json:"ref"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		SSHURL   string `json:"ssh_url"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
}

func (r *Receiver) github(req *http.Request, body, sig []byte) outcome {
	o := outcome{event: req.Header.Get(GitHubEventHeader), delivery: req.Header.Get(GitHubDeliveryHeader)}
	switch o.event {
	case "":
		o.status, o.result, o.clientError = http.StatusBadRequest, "no event", "missing "+GitHubEventHeader+" header"
		return o
	case "push", "ping":
	default:
		o.status, o.result = http.StatusAccepted, "event ignored"
		return o
	}
	payload := body
	if ct, _, _ := strings.Cut(req.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			o.status, o.result, o.clientError = http.StatusBadRequest, "bad form", "invalid form body: want payload=<JSON>"
			return o
		}
		payload = []byte(form.Get("payload"))
	}
	var ev githubPush
	if err := json.Unmarshal(payload, &ev); err != nil {
		o.status, o.result, o.clientError = http.StatusBadRequest, "bad JSON", "invalid JSON body"
		return o
	}
	idx := r.targets.Load()
	var candidates []Target
	seen := map[string]bool{}
	for _, u := range []string{ev.Repository.CloneURL, ev.Repository.SSHURL, ev.Repository.HTMLURL} {
		key := NormalizeURL(u)
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		candidates = append(candidates, idx.byURL[key]...)
	}
	if o.event == "ping" {
		o = decide(o, candidates, body, sig)
		if o.status != http.StatusUnauthorized {
			// A ping with a verified signature, or for no sync of ours:
			// answered, but nothing is triggered.
			o.status, o.result, o.triggered = http.StatusOK, "pong", nil
		}
		return o
	}
	return decide(o, candidates, body, sig)
}

// genericRequest is the body of GenericPath.
type genericRequest struct {
	Repository string `json:"repository"`
	Sync       string `json:"sync"`
}

func (r *Receiver) generic(req *http.Request, body, sig []byte) outcome {
	var o outcome
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var gr genericRequest
	if err := dec.Decode(&gr); err != nil || dec.More() {
		o.status, o.result, o.clientError = http.StatusBadRequest, "bad JSON", `invalid JSON body: want {"repository": "<url>"} or {"sync": "<name>"}`
		return o
	}
	if (gr.Repository == "") == (gr.Sync == "") {
		o.status, o.result, o.clientError = http.StatusBadRequest, "bad request", `set exactly one of "repository" and "sync"`
		return o
	}
	idx := r.targets.Load()
	var candidates []Target
	if gr.Sync != "" {
		if t, ok := idx.byName[gr.Sync]; ok {
			candidates = []Target{t}
		}
	} else if key := NormalizeURL(gr.Repository); key != "" {
		candidates = idx.byURL[key]
	}
	return decide(o, candidates, body, sig)
}

// response answers a delivery that was accepted (200 and 202).
type response struct {
	Triggered []string `json:"triggered"`
}

// errorResponse answers a delivery that was refused.
type errorResponse struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, res any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(res)
}
