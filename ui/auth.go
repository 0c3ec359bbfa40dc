package ui

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
)

// Reviewer asks Kubernetes who a token belongs to and what that user may
// read. KubeReviewer implements it with TokenReview and
// SubjectAccessReview; tests use fakes.
type Reviewer interface {
	// Authenticate returns the user the token belongs to, or an error that
	// wraps ErrInvalidToken when the API server does not accept it.
	Authenticate(ctx context.Context, token string) (User, error)
	// CanRead reports whether user may read sync: get its inventory
	// ConfigMap in invNamespace.
	CanRead(ctx context.Context, user User, invNamespace, sync string) (bool, error)
}

// User is an authenticated user as TokenReview reports it.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// ErrInvalidToken is a token the API server does not accept (unknown,
// expired, revoked or for another audience).
var ErrInvalidToken = errors.New("the token was not accepted")

// errNoToken is a request that carries no token.
var errNoToken = errors.New("no token")

// cookieName holds the token pasted into the login form.
const cookieName = "tether_token"

// maxCookieToken is the longest token the login form stores: browsers keep
// cookies of about 4 KiB.
const maxCookieToken = 3800

// Sizes and lifetimes of the decision caches.
const (
	authCacheSize = 1024
	sarCacheSize  = 8192
)

// authCache keeps TokenReview and SubjectAccessReview answers for ttl,
// keyed by a hash of the token (the token itself is never kept as a key),
// so a page and its refreshes cost the API server a review per user and
// sync every ttl at most.
type authCache struct {
	r     Reviewer
	ttl   time.Duration
	users *cache.LRUExpireCache
	reads *cache.LRUExpireCache
}

func newAuthCache(r Reviewer, ttl time.Duration) *authCache {
	return &authCache{r: r, ttl: ttl, users: cache.NewLRUExpireCache(authCacheSize), reads: cache.NewLRUExpireCache(sarCacheSize)}
}

// tokenKey is the cache key of a token.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// authResult is a cached TokenReview answer: a user, or invalid.
type authResult struct {
	user    User
	invalid bool
}

func (c *authCache) authenticate(ctx context.Context, key, token string) (User, error) {
	if v, ok := c.users.Get(key); ok {
		r := v.(authResult)
		if r.invalid {
			return User{}, ErrInvalidToken
		}
		return r.user, nil
	}
	u, err := c.r.Authenticate(ctx, token)
	switch {
	case errors.Is(err, ErrInvalidToken):
		c.users.Add(key, authResult{invalid: true}, c.ttl)
		return User{}, err
	case err != nil:
		return User{}, err
	}
	c.users.Add(key, authResult{user: u}, c.ttl)
	return u, nil
}

func (c *authCache) canRead(ctx context.Context, key string, u User, invNamespace, sync string) (bool, error) {
	k := key + "\x00" + invNamespace + "\x00" + sync
	if v, ok := c.reads.Get(k); ok {
		return v.(bool), nil
	}
	ok, err := c.r.CanRead(ctx, u, invNamespace, sync)
	if err != nil {
		return false, err
	}
	c.reads.Add(k, ok, c.ttl)
	return ok, nil
}

// credentials is the token of a request and where it came from.
type credentials struct {
	token      string
	fromCookie bool
}

// requestToken finds the request's token: an Authorization bearer token
// (a client or a proxy that authenticates users), else the login cookie.
func requestToken(r *http.Request) (credentials, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return credentials{}, ErrInvalidToken
		}
		return credentials{token: token}, nil
	}
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		return credentials{token: c.Value, fromCookie: true}, nil
	}
	return credentials{}, errNoToken
}

// tokenCookie is the login cookie: HttpOnly (no script reads it),
// SameSite=Strict (no other site's page sends it), Secure under TLS, and
// scoped to the page (see cookiePath). An empty token deletes the cookie.
func tokenCookie(r *http.Request, token string) *http.Cookie {
	c := &http.Cookie{Name: cookieName, Value: token, Path: cookiePath(r), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if token == "" {
		c.MaxAge = -1
	}
	return c
}

// cookiePath is the path of /ui as the browser sees it: /ui, or behind a
// proxy that says where it forwarded from (X-Forwarded-Uri, which the API
// server's service proxy sets for kubectl proxy) that proxy's prefix and
// /ui. Setting and deleting the cookie from any page then agree on it.
func cookiePath(r *http.Request) string {
	prefix := ""
	if fwd := r.Header.Get("X-Forwarded-Uri"); fwd != "" {
		if p, ok := strings.CutSuffix(fwd, r.URL.EscapedPath()); ok && strings.HasPrefix(p, "/") && !strings.ContainsAny(p, ";,\"\\ ") {
			prefix = p
		}
	}
	return prefix + strings.TrimSuffix(Prefix, "/")
}

// cookieSafe reports whether a token can be a cookie value as it is:
// printable ASCII without the characters cookies reserve.
func cookieSafe(token string) bool {
	for i := range len(token) {
		if c := token[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`";,\`, c) >= 0 {
			return false
		}
	}
	return len(token) <= maxCookieToken
}
