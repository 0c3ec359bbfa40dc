// Package ui is tether's read-only web page, served by the agent under
// /ui/: an overview of every sync, a page per sync (its objects as a tree
// with health and provenance, its recent attempts) and a page per object
// (`tether why` with what tether applied and the live object side by side,
// Secret values masked, and their diff).
//
// Who may see what is decided by Kubernetes: every request carries a
// bearer token (an Authorization header, or the login form's HttpOnly
// cookie), checked with TokenReview; a user sees the syncs whose inventory
// ConfigMap a SubjectAccessReview says they may get. Answers are cached
// briefly, keyed by a hash of the token.
//
// The page is server-rendered with html/template (every string escaped),
// its assets are embedded, it sends a strict Content-Security-Policy, and
// it works without JavaScript; with it, a few lines of script refresh the
// page when the agent's status changes (Server-Sent Events). Every link is
// relative, so the page also works under a proxy's path prefix such as
// kubectl proxy's. It offers no write action.
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	gosync "sync"
	"time"

	"github.com/tether-gitops/tether/agent"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Options configure a Server.
type Options struct {
	// Status is the agent's status (agent.Agent.Status).
	Status func() agent.Status
	// Source reads syncs and objects from the cluster.
	Source Source
	// Reviewer checks tokens and access.
	Reviewer Reviewer
	// Extras fills the drift and image sections; nil shows none.
	Extras ExtrasSource
	// Log receives what the page could not do (never a token).
	Log *slog.Logger
	// AuthTTL is how long token and access decisions are kept; default
	// 10s.
	AuthTTL time.Duration
	// EventInterval is how often an open page's event stream looks for
	// changes; default 1s.
	EventInterval time.Duration
	// StreamLifetime ends an event stream after this long (the browser
	// reconnects, and is authorised again); default 5m.
	StreamLifetime time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server serves the page.
type Server struct {
	opts   Options
	auth   *authCache
	pages  map[string]*template.Template
	static http.Handler

	streams streams

	closeOnce gosync.Once
	closed    chan struct{}
}

// ContentSecurityPolicy is sent with every response: scripts, styles,
// images and connections only from the page's own origin, no inline script
// or style, no frames, no base URL, forms only to the page itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Prefix is where the page is mounted.
const Prefix = "/ui/"

// New parses the templates and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Status == nil || opts.Source == nil || opts.Reviewer == nil {
		return nil, errors.New("ui: Status, Source and Reviewer are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.AuthTTL <= 0 {
		opts.AuthTTL = 10 * time.Second
	}
	if opts.EventInterval <= 0 {
		opts.EventInterval = time.Second
	}
	if opts.StreamLifetime <= 0 {
		opts.StreamLifetime = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	return &Server{
		opts:   opts,
		auth:   newAuthCache(opts.Reviewer, opts.AuthTTL),
		pages:  pages,
		static: http.StripPrefix(Prefix+"static/", http.FileServerFS(static)),
		closed: make(chan struct{}),
	}, nil
}

// Close ends the open event streams (call it when the HTTP server shuts
// down: a stream never goes idle by itself).
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Handler serves the page; mount it at Prefix.
//
//	GET  /ui/                           overview (?q=, ?state=, ?sort=, ?dir=desc)
//	GET  /ui/syncs/NAME                 one sync
//	GET  /ui/objects/KIND[.GROUP]/NS/NAME  one object (cluster-scoped: KIND[.GROUP]/NAME)
//	GET  /ui/events                     Server-Sent Events: "change" when the page is stale
//	GET  /ui/login, POST /ui/login      the token form; POST /ui/logout forgets the token
//	GET  /ui/static/...                 style sheet and script
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/{$}", s.withViewer(s.overview))
	mux.HandleFunc("GET /ui/syncs/{name}", s.withViewer(s.syncPage))
	mux.HandleFunc("GET /ui/objects/{ref...}", s.withViewer(s.objectPage))
	mux.HandleFunc("GET /ui/events", s.events)
	mux.HandleFunc("GET /ui/login", s.loginForm)
	mux.HandleFunc("POST /ui/login", s.login)
	mux.HandleFunc("POST /ui/logout", s.logout)
	mux.HandleFunc("GET /ui/static/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		s.static.ServeHTTP(w, r)
	})
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusNotFound, "There is no such page.")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		mux.ServeHTTP(w, r)
	})
}

// viewer is an authenticated request: who it is and the syncs it may see.
type viewer struct {
	user   User
	cookie bool
	status agent.Status
	// visible are the syncs the user may read, in the agent's order.
	visible []agent.SyncStatus
	// notes say what could not be checked.
	notes []string
}

// find returns the visible sync called name.
func (v *viewer) find(name string) (agent.SyncStatus, bool) {
	for _, s := range v.visible {
		if s.Name == name {
			return s, true
		}
	}
	return agent.SyncStatus{}, false
}

// authorize authenticates the request and finds the syncs it may see. A
// sync whose access cannot be checked is hidden, with a note.
func (s *Server) authorize(r *http.Request) (*viewer, error) {
	creds, err := requestToken(r)
	if err != nil {
		return nil, err
	}
	key := tokenKey(creds.token)
	u, err := s.auth.authenticate(r.Context(), key, creds.token)
	if err != nil {
		return nil, err
	}
	v := &viewer{user: u, cookie: creds.fromCookie, status: s.opts.Status()}
	allowed := make([]bool, len(v.status.Syncs))
	errs := make([]error, len(v.status.Syncs))
	parallel(len(v.status.Syncs), func(i int) {
		allowed[i], errs[i] = s.auth.canRead(r.Context(), key, u, v.status.InventoryNamespace, v.status.Syncs[i].Name)
	})
	failed := 0
	for i, sync := range v.status.Syncs {
		if errs[i] != nil {
			failed++
			s.opts.Log.Warn("cannot check access to a sync", "user", u.Name, "sync", sync.Name, "error", errs[i])
		}
		if allowed[i] {
			v.visible = append(v.visible, sync)
		}
	}
	if failed > 0 {
		v.notes = append(v.notes, "The API server could not say whether you may read some syncs; they are hidden. Reload to try again.")
	}
	return v, nil
}

// withViewer authorises a page request: without a token it shows the login
// form (401), with a token the API server rejects likewise (and forgets
// the cookie), and when the API server cannot be asked, an error (503).
func (s *Server) withViewer(h func(http.ResponseWriter, *http.Request, *viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := s.authorize(r)
		switch {
		case errors.Is(err, errNoToken):
			s.renderLogin(w, r, http.StatusUnauthorized, "")
		case errors.Is(err, ErrInvalidToken):
			if c, _ := requestToken(r); c.fromCookie {
				http.SetCookie(w, tokenCookie(r, ""))
			}
			s.renderLogin(w, r, http.StatusUnauthorized, "The API server did not accept the token.")
		case err != nil:
			s.opts.Log.Error("cannot check a token", "error", err)
			s.renderError(w, r, http.StatusServiceUnavailable, "The API server could not check your token; try again shortly.")
		default:
			h(w, r, v)
		}
	}
}

// root is the relative path from the request's page back to /ui/, so every
// link works under any path prefix.
func root(r *http.Request) string {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), Prefix)
	if n := strings.Count(rest, "/"); n > 0 {
		return strings.Repeat("../", n)
	}
	return "./"
}

// page is what every template gets.
type page struct {
	Root  string
	Title string
	// User is who is signed in ("" on the login page).
	User string
	// CookieAuth offers to sign out.
	CookieAuth bool
	// Events is the event stream's URL ("" for no live refresh).
	Events string
	// Banners are shown on top of the page.
	Banners []string
	Now     time.Time
	Data    any
}

// newPage fills the parts every page has.
func (s *Server) newPage(r *http.Request, v *viewer, title string, data any) *page {
	p := &page{Root: root(r), Title: title, Now: s.opts.Now(), Data: data}
	if v != nil {
		p.User, p.CookieAuth = v.user.Name, v.cookie
		if !v.status.Leader {
			p.Banners = append(p.Banners, "This replica stands by: the leader runs the syncs, so progress shows on its page.")
		}
		if v.status.ConfigError != "" && len(v.visible) > 0 {
			p.Banners = append(p.Banners, "The newest configuration was rejected; the previous one keeps running: "+v.status.ConfigError)
		}
		p.Banners = append(p.Banners, v.notes...)
	}
	return p
}

// render executes a page template into a buffer first, so a failing
// template never sends half a page.
func (s *Server) render(w http.ResponseWriter, code int, name string, p *page) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.opts.Log.Error("rendering a page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// errorData is the error page.
type errorData struct {
	Code    int
	Message string
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, code, "error", s.newPage(r, nil, http.StatusText(code), errorData{Code: code, Message: msg}))
}

// loginData is the login form.
type loginData struct {
	Message string
	// Next is the page to return to, relative to /ui/.
	Next string
}

// safeNext returns next when it is a page under /ui/ to return to after
// signing in (syncs/... or objects/..., relative, without a scheme, host,
// query or "..", also escaped: browsers resolve %2e%2e as "..") and ""
// otherwise.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "syncs/") && !strings.HasPrefix(next, "objects/") {
		return ""
	}
	unescaped, err := url.PathUnescape(next)
	if err != nil || strings.Contains(unescaped, "..") || strings.Contains(next, "//") || len(next) > 1024 {
		return ""
	}
	for _, c := range next {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._~%/-", c)) {
			return ""
		}
	}
	return next
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	next := safeNext(strings.TrimPrefix(r.URL.EscapedPath(), Prefix))
	if r.Method == http.MethodPost {
		next = safeNext(r.PostFormValue("next"))
	}
	s.render(w, code, "login", s.newPage(r, nil, "Sign in", loginData{Message: msg, Next: next}))
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

// maxLoginBody bounds the login form.
const maxLoginBody = 16 << 10

// sameOrigin refuses form posts another site's page made: browsers say so
// in Sec-Fetch-Site (and the cookie is SameSite=Strict besides).
func sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

// login checks the pasted token with TokenReview and keeps it in the
// cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.renderError(w, r, http.StatusForbidden, "Sign in from the page itself.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if t, ok := strings.CutPrefix(token, "Bearer "); ok {
		token = strings.TrimSpace(t)
	}
	switch {
	case token == "":
		s.renderLogin(w, r, http.StatusBadRequest, "Paste a token.")
		return
	case !cookieSafe(token):
		s.renderLogin(w, r, http.StatusBadRequest, "This token cannot be kept in a cookie; send it in an Authorization header instead.")
		return
	}
	if _, err := s.auth.authenticate(r.Context(), tokenKey(token), token); err != nil {
		if errors.Is(err, ErrInvalidToken) {
			s.renderLogin(w, r, http.StatusUnauthorized, "The API server did not accept the token.")
			return
		}
		s.opts.Log.Error("cannot check a token", "error", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "The API server could not check your token; try again shortly.")
		return
	}
	http.SetCookie(w, tokenCookie(r, token))
	// Relative, so it works under a proxy prefix; the login form posts to
	// /ui/login, so "./" is /ui/.
	w.Header().Set("Location", "./"+safeNext(r.PostFormValue("next")))
	w.WriteHeader(http.StatusSeeOther)
}

// logout forgets the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.renderError(w, r, http.StatusForbidden, "Sign out from the page itself.")
		return
	}
	http.SetCookie(w, tokenCookie(r, ""))
	w.Header().Set("Location", "login")
	w.WriteHeader(http.StatusSeeOther)
}

// extras returns the optional sections of a sync, from the agent's status
// st, with the drift values of Secrets masked.
func (s *Server) extras(ctx context.Context, st *agent.Status, sync string) Extras {
	if s.opts.Extras == nil {
		return Extras{}
	}
	ex := s.opts.Extras.Extras(ctx, st, sync)
	ex.Drift = maskDrift(ex.Drift)
	return ex
}
