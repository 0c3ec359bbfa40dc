package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// tokenRegistry is go-containerregistry's in-memory registry behind a
// Docker token server: every registry request needs a bearer token, which
// the token server hands out for basic credentials (GET, the token flow)
// or an identity token (POST, the OAuth2 refresh-token flow), on another
// host, as Docker Hub's auth.docker.io is. Refused
// requests are answered with the credentials they carried, as a careless
// server might: a scan's errors must not repeat them.
type tokenRegistry struct {
	host, tokenHost string
	user, password  string
	identityToken   string
	registryToken   string // a token the registry accepts without an exchange

	mu       sync.Mutex
	issued   map[string]bool
	requests []string // token requests: "GET scope service" or "POST grant scope service"
}

func startTokenRegistry(t *testing.T) *tokenRegistry {
	t.Helper()
	tr := &tokenRegistry{user: "robot", password: "basic-Pa55word", identityToken: "identity-T0ken-abc", registryToken: "registry-T0ken-xyz",
		issued: map[string]bool{}}
	tr.issued[tr.registryToken] = true
	back := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tokens := httptest.NewServer(http.HandlerFunc(tr.token))
	t.Cleanup(tokens.Close)
	// A host name: go-containerregistry refuses a realm on a private IP
	// literal other than the registry's own host:port.
	tr.tokenHost = strings.Replace(hostOf(tokens.URL), "127.0.0.1", "localhost", 1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tr.mu.Lock()
		valid := ok && tr.issued[tok]
		tr.mu.Unlock()
		if !valid {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test-registry",scope="repository:app:pull"`, tr.tokenHost))
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token %q is not valid"}]}`, tok)
			return
		}
		back.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	tr.host = hostOf(front.URL)
	// Push straight into the registry behind the front.
	plain := httptest.NewServer(back)
	t.Cleanup(plain.Close)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"1", "7", "3"} {
		ref, err := name.NewTag(hostOf(plain.URL)+"/app:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func (tr *tokenRegistry) token(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ok bool
	var given string
	record := r.Method + " "
	switch r.Method {
	case http.MethodGet:
		u, p, basic := r.BasicAuth()
		ok, given = basic && u == tr.user && p == tr.password, r.Header.Get("Authorization")
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q = r.PostForm
		record += q.Get("grant_type") + " "
		ok, given = q.Get("grant_type") == "refresh_token" && q.Get("refresh_token") == tr.identityToken, q.Get("refresh_token")
	}
	tr.mu.Lock()
	tr.requests = append(tr.requests, record+q.Get("scope")+" "+q.Get("service"))
	tr.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unknown credentials %q"}]}`, given)
		return
	}
	tok := fmt.Sprintf("issued-%d", len(tr.requests))
	tr.mu.Lock()
	tr.issued[tok] = true
	tr.mu.Unlock()
	key := "token"
	if r.Method == http.MethodPost {
		key = "access_token" // the OAuth2 answer
	}
	_ = json.NewEncoder(w).Encode(map[string]string{key: tok})
}

func (tr *tokenRegistry) takeRequests() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := tr.requests
	tr.requests = nil
	return out
}

// Bearer-token registries: credentials from a .dockerconfigjson (auth,
// identitytoken, registrytoken) or a password file are exchanged for a
// token with the realm, service and scope the registry names, and no
// refused credential appears in the error, even when the servers echo
// it.
func TestScanBearerToken(t *testing.T) {
	tr := startTokenRegistry(t)
	dir := t.TempDir()
	configs := 0
	dockerConfig := func(entry map[string]string) string {
		configs++
		path := filepath.Join(dir, fmt.Sprintf("config-%d.json", configs))
		data, _ := json.Marshal(map[string]any{"auths": map[string]any{tr.host: entry}})
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	passwordFile := filepath.Join(dir, "password")
	s := NewScanner(nil)
	p := testPolicy(t, tr.host+"/app")
	const scope = "repository:app:pull test-registry"
	for _, tc := range []struct {
		name string
		reg  Registry
		// tokenRequests are the requests the token server must see.
		tokenRequests []string
		// wrong are credentials that the servers refuse, and the
		// secrets the error must not hold.
		secrets []string
	}{
		{name: "docker config auth: the token flow",
			reg:           Registry{DockerConfigFile: dockerConfig(map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(tr.user + ":" + tr.password))})},
			tokenRequests: []string{"GET " + scope}},
		{name: "docker config username and password",
			reg:           Registry{DockerConfigFile: dockerConfig(map[string]string{"username": tr.user, "password": tr.password})},
			tokenRequests: []string{"GET " + scope}},
		{name: "docker config identitytoken: the OAuth2 refresh-token flow",
			reg:           Registry{DockerConfigFile: dockerConfig(map[string]string{"identitytoken": tr.identityToken})},
			tokenRequests: []string{"POST refresh_token " + scope}},
		{name: "docker config registrytoken: sent as the bearer token, no exchange",
			reg: Registry{DockerConfigFile: dockerConfig(map[string]string{"registrytoken": tr.registryToken})}},
		{name: "password file", reg: Registry{Username: tr.user, PasswordFile: passwordFile}, tokenRequests: []string{"GET " + scope}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(passwordFile, []byte(tr.password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.reg.Host, tc.reg.Insecure = tr.host, true
			tr.takeRequests()
			res, err := s.Scan(context.Background(), p, tc.reg, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Best, []string{"7", "3"}) || res.Tags != 3 {
				t.Errorf("result %+v", res)
			}
			if got := tr.takeRequests(); !slices.Equal(got, tc.tokenRequests) {
				t.Errorf("token requests %q, want %q", got, tc.tokenRequests)
			}
		})
	}

	// Refused credentials: a 401, and none of them in the error.
	wrongPass, wrongID, wrongReg := "wrong-"+tr.password, "wrong-"+tr.identityToken, "wrong-"+tr.registryToken
	for _, tc := range []struct {
		name    string
		reg     Registry
		secrets []string
	}{
		{"a wrong password in the docker config", Registry{DockerConfigFile: dockerConfig(map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(tr.user + ":" + wrongPass))})},
			[]string{wrongPass, base64.StdEncoding.EncodeToString([]byte(tr.user + ":" + wrongPass))}},
		{"a wrong identity token", Registry{DockerConfigFile: dockerConfig(map[string]string{"identitytoken": wrongID})}, []string{wrongID}},
		{"a wrong registry token", Registry{DockerConfigFile: dockerConfig(map[string]string{"registrytoken": wrongReg})}, []string{wrongReg}},
		{"a wrong password file", Registry{Username: tr.user, PasswordFile: passwordFile}, []string{wrongPass, base64.StdEncoding.EncodeToString([]byte(tr.user + ":" + wrongPass))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(passwordFile, []byte(wrongPass), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.reg.Host, tc.reg.Insecure = tr.host, true
			_, err := s.Scan(context.Background(), p, tc.reg, 2, nil)
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("want a 401: %v", err)
			}
			for _, secret := range tc.secrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error holds a credential %q: %v", secret, err)
				}
			}
		})
	}
}
