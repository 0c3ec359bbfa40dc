package images

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// DefaultMessageTemplate is the commit message of a write-back: a subject,
// then one line per changed value, saying which go back because the tag
// tether wrote failed its rollout.
const DefaultMessageTemplate = `{{if .Rollback}}Roll back{{else}}Update{{end}} images of {{.Sync}}

{{range .Changes -}}
- {{.Image}}: {{.Old}} → {{.New}} (policy {{.Policy}}, {{.File}}:{{.Line}}){{if .RolledBack}}: rollback, {{.RolledBack}} failed its rollout{{end}}
{{end -}}
`

// maxMessage bounds a commit message.
const maxMessage = 64 << 10

// MessageData is what a message template is executed with.
type MessageData struct {
	// Sync is the sync's name.
	Sync string
	// Changes are the changed values, in file order.
	Changes []Change
	// Rollback is set when every change with a tag goes back from a tag
	// that failed its rollout (Change.RolledBack).
	Rollback bool
}

// NewMessageData is the data of a round's message.
func NewMessageData(sync string, changes []Change) MessageData {
	d := MessageData{Sync: sync, Changes: changes}
	for _, c := range changes {
		if c.NewTag == "" {
			continue
		}
		if c.RolledBack == "" {
			d.Rollback = false
			return d
		}
		d.Rollback = true
	}
	return d
}

// ParseMessageTemplate parses a commit message template and tries it on
// sample data, so a template that cannot run is refused when the
// configuration is loaded, not at the first commit.
func ParseMessageTemplate(text string) (*template.Template, error) {
	t, err := template.New("message").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	sample := MessageData{Sync: "sample", Changes: []Change{{File: "app/deployment.yaml", Line: 7, Policy: "app", Field: FieldImage,
		Image: "registry.example.com/app", Old: "registry.example.com/app:1.0.0", New: "registry.example.com/app:1.1.0", OldTag: "1.0.0", NewTag: "1.1.0"},
		{File: "app/deployment.yaml", Line: 9, Policy: "api", Field: FieldTag,
			Image: "registry.example.com/api", Old: "2.1.0", New: "2.0.0", OldTag: "2.1.0", NewTag: "2.0.0", RolledBack: "2.1.0"}}}
	if _, err := RenderMessage(t, sample); err != nil {
		return nil, err
	}
	return t, nil
}

// RenderMessage executes a message template. An empty message is an
// error: git would refuse it and a reviewer could not tell what changed.
func RenderMessage(t *template.Template, data MessageData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&limitedBuffer{b: &b, left: maxMessage}, data); err != nil {
		return "", fmt.Errorf("commit message template: %w", err)
	}
	msg := strings.TrimSpace(b.String())
	if msg == "" {
		return "", errors.New("commit message template: the message is empty")
	}
	return msg + "\n", nil
}

// limitedBuffer fails a template that writes more than left bytes.
type limitedBuffer struct {
	b    *bytes.Buffer
	left int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(p) > l.left {
		return 0, fmt.Errorf("the message is longer than %d bytes", maxMessage)
	}
	l.left -= len(p)
	return l.b.Write(p)
}
