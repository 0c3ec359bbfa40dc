package source

import (
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
)

// Redact returns url with any credentials replaced by "***", for errors and
// logs: "https://user:pass@host/x" and "https://token@host/x" become
// "https://***@host/x". SSH URLs keep a bare user name ("ssh://git@host/x",
// "git@host:x"), which is not a secret, but lose a password. It works on
// strings that do not parse as URLs, and never returns the input's userinfo
// when it had a password.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		// scp-like "user@host:path" or something that is not a URL. Only
		// a "user:secret@" prefix before the host can hold a secret.
		at := strings.Index(url, "@")
		if at < 0 {
			return url
		}
		if slash := strings.IndexAny(url, "/"); slash >= 0 && slash < at {
			return url
		}
		if strings.Contains(url[:at], ":") {
			return "***" + url[at:]
		}
		return url
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return url
	}
	userinfo := authority[:at]
	lower := strings.ToLower(scheme)
	if (lower == "ssh" || lower == "git+ssh" || lower == "ssh+git") && !strings.Contains(userinfo, ":") {
		return url
	}
	return scheme + "://***" + rest[at:]
}

// scrubber removes known secret values from text: the last line of defence
// for messages that come from libraries or servers (a hostile server can
// echo a credential back in an error body).
type scrubber struct {
	secrets []string
}

// add registers a secret, and its URL-escaped forms; short values are
// ignored (replacing every "a" in a message would destroy it without
// protecting anything).
func (s *scrubber) add(secret string) {
	if len(secret) < 4 {
		return
	}
	for _, v := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
		if !slices.Contains(s.secrets, v) {
			s.secrets = append(s.secrets, v)
		}
	}
	// Longest first, so that a secret is never half replaced by a
	// shorter one it contains.
	slices.SortStableFunc(s.secrets, func(a, b string) int { return len(b) - len(a) })
}

// addBasic registers a basic auth password and the form it travels in:
// base64("user:password"), as in "Authorization: Basic ...", which a
// server can echo back. The user alone is not a secret, unless it is all
// there is (a token in the URL's user part): then it is registered too.
func (s *scrubber) addBasic(user, pass string) {
	s.add(pass)
	if pass == "" {
		s.add(user)
	}
	cred := []byte(user + ":" + pass)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		s.add(enc.EncodeToString(cred))
	}
}

// addBearer registers a bearer token and the header value it travels in,
// "Bearer <token>".
func (s *scrubber) addBearer(token string) {
	if len(token) < 4 {
		return
	}
	s.add("Bearer " + token)
	s.add(token)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		s.add(enc.EncodeToString([]byte(token)))
	}
}

func (s *scrubber) scrub(text string) string {
	for _, sec := range s.secrets {
		text = strings.ReplaceAll(text, sec, "***")
	}
	return text
}

// err wraps err so that its message is scrubbed. errors.Is still matches
// the original chain, but the original error (whose text may hold the
// secret) cannot be unwrapped.
func (s *scrubber) err(err error) error {
	if err == nil {
		return nil
	}
	msg := s.scrub(err.Error())
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Is lets errors.Is see through the wrapper without exposing the original.
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }
