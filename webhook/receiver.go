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
	"net"
	"net/http"
	"net/netip"
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
	// DefaultRateLimit is the refused deliveries per second one source
	// address may send before its refusals are answered 429.
	DefaultRateLimit = 1.0
	// DefaultBurst is the refused deliveries one source address may send at
	// once.
	DefaultBurst = 20
	// DefaultMaxInFlight bounds the deliveries read at the same time, and
	// so the memory bodies take (MaxInFlight × MaxBody).
	DefaultMaxInFlight = 32
)

// DefaultBodyTimeout bounds the time a delivery's body may take to
// arrive. Senders (GitHub, registries, CI jobs) send a few kilobytes at
// once.
const DefaultBodyTimeout = 5 * time.Second

// maxAddresses bounds the source addresses whose refusals are tracked.
const maxAddresses = 4096

// suppressedRefusals is the summary logged for an address over its budget.
const suppressedRefusals = "webhook refusals from this address are over its rate limit; answering 429 (503 while busy) and logging them no more than once a minute"

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
	// BodyTimeout bounds the time the body may take to arrive, and so the
	// time a slow sender holds an in-flight slot; default
	// DefaultBodyTimeout.
	BodyTimeout time.Duration
	// RateLimit is the refused deliveries per second accepted from one
	// source address before its refusals are answered 429; default
	// DefaultRateLimit. Deliveries whose signature verifies are never
	// limited and never use this budget (a 503 while busy, given before
	// the signature is read, does use it).
	RateLimit float64
	// Burst is the refused deliveries one source address may send at once;
	// default DefaultBurst.
	Burst int
	// MaxInFlight bounds the deliveries being read at once, and a quarter
	// of it those from one address (so a few slow senders cannot hold every
	// slot); more answer 503. Default DefaultMaxInFlight.
	MaxInFlight int
	// Now is the clock of the rate limiter; default time.Now.
	Now func() time.Time
	// TriggerImages asks for an immediate scan of the image policies that
	// follow host/repository (RegistryPath) and returns their names; it
	// must not block. nil does nothing.
	TriggerImages func(host, repository string) []string
}

// Receiver is the webhook http.Handler. Its targets can be replaced while
// it serves.
type Receiver struct {
	trigger  func(string)
	log      *slog.Logger
	maxBody  int64
	bodyTime time.Duration
	now      func() time.Time
	targets  atomic.Pointer[index]
	inFlight *inFlight
	refusals *refusals
	// registries and triggerImages serve RegistryPath (registry.go).
	registries    atomic.Pointer[[]RegistryTarget]
	triggerImages func(host, repository string) []string
}

// index is an immutable lookup of the targets.
type index struct {
	byURL  map[string][]Target // NormalizeURL(RepoURL) → targets
	byName map[string]Target
	// secrets holds every distinct secret, to tell a sender that signs
	// with a secret of ours (but names nothing we follow) from one that
	// does not know any.
	secrets [][]byte
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
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Receiver{
		trigger:  opts.Trigger,
		log:      opts.Logger,
		maxBody:  opts.MaxBody,
		bodyTime: opts.BodyTimeout,
		now:      opts.Now,
		inFlight: &inFlight{max: opts.MaxInFlight, perAddress: max(1, opts.MaxInFlight/4), by: map[string]int{}},
		refusals: newRefusals(rate.Limit(opts.RateLimit), opts.Burst, maxAddresses),
	}
	r.targets.Store(&index{})
	r.triggerImages = opts.TriggerImages
	if r.triggerImages == nil {
		r.triggerImages = func(string, string) []string { return nil }
	}
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
		if len(t.Secret) > 0 && !slices.ContainsFunc(idx.secrets, func(s []byte) bool { return bytes.Equal(s, t.Secret) }) {
			idx.secrets = append(idx.secrets, t.Secret)
		}
		if key := NormalizeURL(t.RepoURL); key != "" {
			idx.byURL[key] = append(idx.byURL[key], t)
		}
	}
	r.targets.Store(idx)
}

// ServeHTTP serves GitHubPath and GenericPath; see the package
// documentation for the protocol.
//
// A delivery without a well-formed signature header (a registry
// notification without a known secret) is refused before its body is read
// (it never holds an in-flight slot); every other delivery's
// body is read (bounded) and its signature checked before anything else
// is decided, so a flood of unsigned or badly signed requests
// cannot keep a correctly signed one out: refusals are counted per source
// address and, past that address's budget, answered 429 (and no longer
// logged one by one), while a delivery that verifies is always served.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var handle func(req *http.Request, body []byte, sig []byte, scanAll bool) outcome
	endpoint := ""
	switch req.URL.Path {
	case GitHubPath:
		handle, endpoint = r.github, "github"
	case GenericPath:
		handle, endpoint = r.generic, "generic"
	case RegistryPath:
		handle, endpoint = r.registry, "registry"
	default:
		http.NotFound(w, req)
		return
	}
	addr := sourceAddress(req.RemoteAddr)
	log := r.log.With("endpoint", endpoint, "remote", addr)
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "use POST"})
		return
	}
	// A delivery without a well-formed signature header (or, for
	// registries, without a known secret, which needs no body to check)
	// is refused before its body is read, so it never holds an in-flight
	// slot that a signed delivery would need.
	if o, refused := r.refuseUnsigned(req, endpoint); refused {
		w.Header().Set("Connection", "close") // the body is not read
		r.answer(w, log, addr, o)
		return
	}
	if !r.inFlight.enter(addr) {
		// A refusal like the others: logged within the address's budget,
		// summarised past it, so a sender that keeps its slots busy and
		// sends on cannot flood the log.
		if ok, _, report := r.refusals.charge(addr, r.now()); ok {
			log.Warn("webhook refused", "outcome", "too many deliveries in flight")
		} else if report > 0 {
			log.Warn(suppressedRefusals, "suppressed", report)
		}
		w.Header().Set("Retry-After", "1")
		// The body is not read: closing the connection answers at once
		// (net/http would otherwise read what is left of it first).
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "busy"})
		return
	}
	defer r.inFlight.leave(addr)
	// A slot is held while the body arrives: a sender trickling it keeps
	// the slot for the body timeout at most, not the server's whole read
	// timeout. (An error means the connection cannot take a deadline, as
	// in tests with a recorder; the server's own timeout still applies.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.bodyTime))
	r.answer(w, log, addr, r.receive(req, endpoint, handle, r.refusals.hasBudget(addr, r.now())))
}

// refuseUnsigned returns the refusal of a delivery that can be refused
// from its headers alone: no well-formed signature header (GitHub,
// generic), or no registry secret in its Authorization header or, without
// one, its token parameter (registry; whether a token parameter may stand
// for the header depends on the body, checked later).
func (r *Receiver) refuseUnsigned(req *http.Request, endpoint string) (outcome, bool) {
	if endpoint == "registry" {
		auth := req.Header.Get("Authorization")
		if r.registryFor(auth) != nil || (auth == "" && r.registryFor(req.URL.Query().Get(RegistryTokenParam)) != nil) {
			return outcome{}, false
		}
		return outcome{event: "registry", status: http.StatusUnauthorized, result: "invalid registry secret", clientError: registrySecretHelp}, true
	}
	header := SignatureHeader
	if endpoint == "github" {
		header = GitHubSignatureHeader
	}
	if _, err := parseSignature(req.Header.Get(header)); err != nil {
		return outcome{status: http.StatusUnauthorized, result: "unsigned: " + err.Error(), clientError: err.Error() + " (" + header + ")"}, true
	}
	return outcome{}, false
}

// answer charges a refusal to the address's budget (answering 429 past
// it), logs the outcome, triggers what a verified delivery names and
// writes the answer.
func (r *Receiver) answer(w http.ResponseWriter, log *slog.Logger, addr string, o outcome) {
	if o.status >= 400 {
		if ok, wait, report := r.refusals.charge(addr, r.now()); !ok {
			if report > 0 {
				log.Warn(suppressedRefusals, "suppressed", report)
			}
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			writeJSON(w, http.StatusTooManyRequests, errorResponse{Error: "too many refused requests"})
			return
		}
	}
	o.log(log)
	if o.status == http.StatusOK && !o.images {
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

// receive reads and judges one delivery. scanAll says whether a signature
// that verifies for no matching sync may still be checked against every
// secret (to answer 202 rather than 401); it is off for an address over
// its refusal budget, so a flood costs at most one HMAC per matching sync.
func (r *Receiver) receive(req *http.Request, endpoint string, handle func(*http.Request, []byte, []byte, bool) outcome, scanAll bool) outcome {
	body, err := readBody(req, r.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return outcome{status: http.StatusRequestEntityTooLarge, result: "body too large", clientError: "body too large"}
		}
		return outcome{status: http.StatusBadRequest, result: "body unreadable", clientError: "could not read the body"}
	}
	if endpoint == "registry" {
		return handle(req, body, nil, scanAll) // a shared secret, not a signature
	}
	header := SignatureHeader
	if endpoint == "github" {
		header = GitHubSignatureHeader
	}
	sig, err := parseSignature(req.Header.Get(header))
	if err != nil {
		return outcome{status: http.StatusUnauthorized, result: "unsigned: " + err.Error(), clientError: err.Error() + " (" + header + ")"}
	}
	return handle(req, body, sig, scanAll)
}

// sourceAddress is who sent a delivery, for the per-address limits: the
// host part of the remote address, an IPv6 address reduced to its /64
// (one host may own a whole /64, and would otherwise have a fresh budget
// per address). Behind a proxy or an ingress every delivery has the
// proxy's address: refusals are then counted together, which still never
// refuses a delivery that verifies.
func sourceAddress(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return host
	}
	prefix, err := ip.Prefix(64)
	if err != nil {
		return host
	}
	return prefix.String()
}

// outcome is what a handler decided about one delivery.
type outcome struct {
	status int
	// triggered are the syncs to trigger (status 200 only).
	triggered []string
	// clientError is the answer's error; its text never names a
	// repository or sync. A sender whose signature verifies with none of
	// the receiver's secrets gets 401 whatever it names, so sync names and
	// followed repositories cannot be probed; only a sender that knows a
	// secret learns (202) that nothing matched.
	clientError string
	// images: triggered names image policies, already scanning.
	images bool
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

// readBody reads at most limit bytes; more is an *http.MaxBytesError.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err == nil && int64(len(body)) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	return body, err
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

// decide is the common end of both endpoints: the verified syncs (200);
// a signature made with one of the receiver's secrets but matching no sync
// (202); or a signature nobody here made (401), whether or not anything
// matched, so an unauthenticated sender learns nothing about the syncs.
// scanAll allows the check against every secret; without it, a signature
// that verifies for no candidate is a 401.
func (r *Receiver) decide(o outcome, candidates []Target, body, sig []byte, scanAll bool) outcome {
	for _, t := range candidates {
		if !slices.Contains(o.candidates, t.Sync) {
			o.candidates = append(o.candidates, t.Sync)
		}
	}
	if names := verified(candidates, body, sig); len(names) > 0 {
		slices.Sort(names)
		o.status, o.result, o.triggered = http.StatusOK, "triggered", names
		return o
	}
	if scanAll && r.knownSigner(candidates, body, sig) {
		o.status, o.result = http.StatusAccepted, "no matching sync"
		return o
	}
	o.status, o.result, o.clientError = http.StatusUnauthorized, "invalid signature", "invalid signature"
	if len(candidates) == 0 {
		o.result = "invalid signature, no matching sync"
	}
	return o
}

// malformed answers a delivery that cannot be read as asked: 400 saying
// why, to a sender that signs with one of the receiver's secrets; 401 to
// any other, which learns nothing about the body's shape.
func (r *Receiver) malformed(o outcome, body, sig []byte, scanAll bool, result, msg string) outcome {
	if scanAll && r.knownSigner(nil, body, sig) {
		o.status, o.result, o.clientError = http.StatusBadRequest, result, msg
		return o
	}
	o.status, o.result, o.clientError = http.StatusUnauthorized, "invalid signature, "+result, "invalid signature"
	return o
}

// knownSigner reports whether sig was made with any of the receiver's
// secrets other than the candidates' (already tried), in constant time per
// secret.
func (r *Receiver) knownSigner(candidates []Target, body, sig []byte) bool {
	for _, secret := range r.targets.Load().secrets {
		if slices.ContainsFunc(candidates, func(t Target) bool { return bytes.Equal(t.Secret, secret) }) {
			continue
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), sig) {
			return true
		}
	}
	return false
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

func (r *Receiver) github(req *http.Request, body, sig []byte, scanAll bool) outcome {
	o := outcome{event: req.Header.Get(GitHubEventHeader), delivery: req.Header.Get(GitHubDeliveryHeader)}
	if o.event == "" {
		return r.malformed(o, body, sig, scanAll, "no event", "missing "+GitHubEventHeader+" header")
	}
	payload := body
	if ct, _, _ := strings.Cut(req.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			return r.malformed(o, body, sig, scanAll, "bad form", "invalid form body: want payload=<JSON>")
		}
		payload = []byte(form.Get("payload"))
	}
	var ev githubPush
	if err := json.Unmarshal(payload, &ev); err != nil {
		return r.malformed(o, body, sig, scanAll, "bad JSON", "invalid JSON body")
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
	o = r.decide(o, candidates, body, sig, scanAll)
	switch {
	case o.status == http.StatusUnauthorized:
	case o.event == "ping":
		// Signed with one of our secrets: answered, nothing triggered.
		o.status, o.result, o.triggered = http.StatusOK, "pong", nil
	case o.event != "push":
		o.status, o.result, o.triggered = http.StatusAccepted, "event ignored", nil
	}
	return o
}

// genericRequest is the body of GenericPath.
type genericRequest struct {
	Repository string `json:"repository"`
	Sync       string `json:"sync"`
}

func (r *Receiver) generic(_ *http.Request, body, sig []byte, scanAll bool) outcome {
	var o outcome
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var gr genericRequest
	if err := dec.Decode(&gr); err != nil || dec.More() {
		return r.malformed(o, body, sig, scanAll, "bad JSON", `invalid JSON body: want {"repository": "<url>"} or {"sync": "<name>"}`)
	}
	if (gr.Repository == "") == (gr.Sync == "") {
		return r.malformed(o, body, sig, scanAll, "bad request", `set exactly one of "repository" and "sync"`)
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
	return r.decide(o, candidates, body, sig, scanAll)
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
