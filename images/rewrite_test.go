package images

import (
	"strings"
	"testing"
)

func TestParseMarker(t *testing.T) {
	tests := []struct {
		comment string
		want    Marker
		ok      bool
		err     string
	}{
		{"# tether:image web", Marker{Policy: "web", Field: FieldImage}, true, ""},
		{"# tether:image web:tag", Marker{Policy: "web", Field: FieldTag}, true, ""},
		{"#tether:image web:name", Marker{Policy: "web", Field: FieldName}, true, ""},
		{"# tether:image web:digest", Marker{Policy: "web", Field: FieldDigest}, true, ""},
		{"# tether:image web pin", Marker{Policy: "web", Field: FieldImage, Pin: true}, true, ""},
		{"# keep this # tether:image web:tag  pin ", Marker{Policy: "web", Field: FieldTag, Pin: true}, true, ""},
		{"# an ordinary comment", Marker{}, false, ""},
		{"# tether:image", Marker{}, true, "no policy named"},
		{"# tether:imageweb", Marker{}, true, "followed by a space"},
		{"# tether:image web:version", Marker{}, true, `"web:version" is not a field`},
		{"# tether:image Web", Marker{}, true, `"Web" is not a policy name`},
		{"# tether:image web pinned", Marker{}, true, `unexpected "pinned"`},
		{"# tether:image web pin pin", Marker{}, true, `unexpected "pin"`},
	}
	for _, tt := range tests {
		m, ok, err := ParseMarker(tt.comment)
		if ok != tt.ok || m != tt.want {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %+v, %v", tt.comment, m, ok, tt.want, tt.ok)
		}
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseMarker(%q): %v", tt.comment, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseMarker(%q) error = %v, want %q", tt.comment, err, tt.err)
		}
	}
}

const deployment = `# The web app.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep short
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: 'reg.example.com:5000/web:1.0.0'   # tether:image web
      containers:
        - name: web
          image: reg.example.com:5000/web:1.0.0 # tether:image web
          args: ["--x", "y"]
        - name: sidecar
          image: "reg.example.com:5000/sidecar:2.0"	# tether:image side pin
---
# second document
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
  - name: web
    newName: reg.example.com:5000/web  # tether:image web:name
    newTag: 1.0.0 # tether:image web:tag
    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000 # tether:image web:digest
`

func TestFindAndApply(t *testing.T) {
	sites, problems := FindMarkers("app/web.yaml", []byte(deployment))
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	var got []string
	for _, s := range sites {
		got = append(got, s.Location()+" "+s.Marker.Policy+":"+string(s.Marker.Field)+" "+s.Value)
	}
	want := []string{
		"app/web.yaml:11 web:image reg.example.com:5000/web:1.0.0",
		"app/web.yaml:14 web:image reg.example.com:5000/web:1.0.0",
		"app/web.yaml:17 side:image reg.example.com:5000/sidecar:2.0",
		"app/web.yaml:24 web:name reg.example.com:5000/web",
		"app/web.yaml:25 web:tag 1.0.0",
		"app/web.yaml:26 web:digest sha256:0000000000000000000000000000000000000000000000000000000000000000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sites:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	edits := []Edit{
		{Site: sites[0], New: "reg.example.com:5000/web:1.10"},
		{Site: sites[1], New: "reg.example.com:5000/web:1.10"},
		{Site: sites[4], New: "1.10"},
		{Site: sites[5], New: digest},
	}
	out, err := Apply([]byte(deployment), edits)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := strings.NewReplacer(
		"image: 'reg.example.com:5000/web:1.0.0'   # tether:image web", "image: 'reg.example.com:5000/web:1.10'   # tether:image web",
		"image: reg.example.com:5000/web:1.0.0 # tether:image web\n", "image: reg.example.com:5000/web:1.10 # tether:image web\n",
		// 1.10 alone would read as a number: quoted.
		"newTag: 1.0.0 # tether:image web:tag", `newTag: "1.10" # tether:image web:tag`,
		"sha256:0000000000000000000000000000000000000000000000000000000000000000", digest,
	).Replace(deployment)
	if string(out) != wantOut {
		t.Errorf("rewritten:\n%s\nwant:\n%s", out, wantOut)
	}
	// Everything else stays byte for byte: reading the result again finds
	// the same markers at the same lines with the new values.
	again, problems := FindMarkers("app/web.yaml", out)
	if len(problems) > 0 || len(again) != len(sites) || again[4].Value != "1.10" || again[1].Line != 14 {
		t.Errorf("re-read: %+v %v", again, problems)
	}
}

func TestApplyKeepsLineEndings(t *testing.T) {
	in := "a: 1\r\nimage: r/x:1.0.0 # tether:image x\r\nb: 2\r\n"
	sites, problems := FindMarkers("f.yaml", []byte(in))
	if len(sites) != 1 || len(problems) > 0 {
		t.Fatalf("%v %v", sites, problems)
	}
	out, err := Apply([]byte(in), []Edit{{Site: sites[0], New: "r/x:2.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a: 1\r\nimage: r/x:2.0.0 # tether:image x\r\nb: 2\r\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestMarkerProblems(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"malformed", "image: r/x:1 # tether:image\n", "f.yaml:1: malformed marker"},
		{"bad field", "a:\n  image: r/x:1 # tether:image x:ver\n", `f.yaml:2: malformed marker: "x:ver" is not a field`},
		{"on a line of its own", "# tether:image x\nimage: r/x:1\n", "f.yaml:2: a tether:image marker must be a comment at the end of the line"},
		{"on a key without a value", "containers: # tether:image x\n  - image: r/x:1\n", "f.yaml:1: a tether:image marker must be a comment at the end of the line"},
		{"block scalar", "image: | # tether:image x\n  r/x:1\n", "f.yaml:1: the marked value must be a one-line"},
		{"not YAML", "image: [r/x:1 # tether:image x\n", "f.yaml: not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := FindMarkers("f.yaml", []byte(tt.yaml))
			if len(problems) != 1 || !strings.HasPrefix(problems[0].String(), tt.want) {
				t.Errorf("problems = %v, want one starting %q", problems, tt.want)
			}
		})
	}
}

func TestApplyRefusesHostileValues(t *testing.T) {
	in := "image: r/x:1 # tether:image x\n"
	sites, _ := FindMarkers("f.yaml", []byte(in))
	for _, v := range []string{"1\nkind: Secret", "1 # x", `1"`, "", "-x"} {
		if _, err := Apply([]byte(in), []Edit{{Site: sites[0], New: v}}); err == nil {
			t.Errorf("Apply wrote %q", v)
		}
	}
}

func TestSplitImage(t *testing.T) {
	for _, tt := range []struct{ in, name, tag string }{
		{"reg:5000/app:1.2", "reg:5000/app", "1.2"},
		{"reg:5000/app", "reg:5000/app", ""},
		{"app:1@sha256:abc", "app", "1"},
		{"app", "app", ""},
	} {
		if n, tag := SplitImage(tt.in); n != tt.name || tag != tt.tag {
			t.Errorf("SplitImage(%q) = %q, %q", tt.in, n, tag)
		}
	}
}
