package images

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tether-gitops/tether/contract"
)

// Site is one marked value in a file: where it is, what it holds and
// which policy it follows.
type Site struct {
	// File is the file's path relative to the repository root ('/'
	// separated).
	File string
	// Line is the 1-based line of the value.
	Line int
	// Marker is the parsed marker.
	Marker Marker
	// Value is the value as YAML reads it.
	Value string

	// start and end are the byte offsets of the value's text (quotes
	// included) in the file; style is its YAML style.
	start, end int
	style      kyaml.Style
}

// Location is "file:line".
func (s Site) Location() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Problem is a marker that cannot be used, located by file and line.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// String is "file:line: message".
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return p.File + ": " + p.Message
}

// FindMarkers returns the marked values of one YAML file (every document
// in it) and the markers that cannot be used: malformed, on a value that
// is not a one-line scalar, or not at the end of a value's line. It goes
// through kyaml's node tree for the values and their positions; a file
// without the marker text is not parsed at all.
func FindMarkers(file string, data []byte) ([]Site, []Problem) {
	if !bytes.Contains(data, []byte(contract.ImageMarker)) {
		return nil, nil
	}
	f := &markerFile{file: file, data: data, lines: lineStarts(data)}
	dec := kyaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc kyaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.problem(0, fmt.Sprintf("not valid YAML, so its markers cannot be read: %v", err))
			break
		}
		f.walk(&doc, false)
	}
	slices.SortFunc(f.sites, func(a, b Site) int { return a.start - b.start })
	return f.sites, f.problems
}

type markerFile struct {
	file     string
	data     []byte
	lines    []int // byte offset of each line's start; lines[0] is line 1
	sites    []Site
	problems []Problem
}

func (f *markerFile) problem(line int, msg string) {
	f.problems = append(f.problems, Problem{File: f.file, Line: line, Message: msg})
}

// walk visits every node; isKey says the node is a mapping key.
func (f *markerFile) walk(n *kyaml.Node, isKey bool) {
	if n == nil || n.Kind == kyaml.AliasNode {
		return
	}
	for _, c := range []struct {
		text string
		line bool
	}{{n.HeadComment, false}, {n.LineComment, true}, {n.FootComment, false}} {
		if !strings.Contains(c.text, contract.ImageMarker) {
			continue
		}
		if c.line && n.Kind == kyaml.ScalarNode && !isKey {
			f.site(n)
			continue
		}
		// Comments before or after a node, or on a key or collection.
		if _, _, err := ParseMarker(c.text); err != nil {
			f.problem(n.Line, err.Error())
			continue
		}
		f.problem(n.Line, "a "+contract.ImageMarker+" marker must be a comment at the end of the line holding the value it marks (key: value # "+contract.ImageMarker+" POLICY)")
	}
	switch n.Kind {
	case kyaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			f.walk(n.Content[i], true)
			f.walk(n.Content[i+1], false)
		}
	default:
		for _, c := range n.Content {
			f.walk(c, false)
		}
	}
}

// site records a marked scalar after locating its text in the file.
func (f *markerFile) site(n *kyaml.Node) {
	m, _, err := ParseMarker(n.LineComment)
	if err != nil {
		f.problem(n.Line, err.Error())
		return
	}
	start, end, err := f.locate(n)
	if err != nil {
		f.problem(n.Line, err.Error())
		return
	}
	f.sites = append(f.sites, Site{File: f.file, Line: n.Line, Marker: m, Value: n.Value, start: start, end: end, style: n.Style})
}

// locate finds the byte range of a one-line scalar's text from its line
// and column, and checks that the text there reads back as the node's
// value.
func (f *markerFile) locate(n *kyaml.Node) (int, int, error) {
	if n.Line < 1 || n.Line > len(f.lines) || n.Column < 1 {
		return 0, 0, errors.New("cannot locate the marked value")
	}
	lineEnd := len(f.data)
	if n.Line < len(f.lines) {
		lineEnd = f.lines[n.Line] - 1 // the '\n'
	}
	line := f.data[f.lines[n.Line-1]:lineEnd]
	// Columns count characters, not bytes.
	off := 0
	for i := 1; i < n.Column && off < len(line); i++ {
		_, size := utf8.DecodeRune(line[off:])
		off += size
	}
	text := line[off:]
	var length int
	switch n.Style {
	case kyaml.DoubleQuotedStyle:
		length = quotedLength(text, '"')
	case kyaml.SingleQuotedStyle:
		length = quotedLength(text, '\'')
	case 0:
		length = plainLength(text)
	default:
		return 0, 0, errors.New("the marked value must be a one-line plain or quoted scalar (not a block scalar or a tagged value)")
	}
	if length <= 0 {
		return 0, 0, errors.New("the marked value must be a one-line scalar")
	}
	raw := text[:length]
	var back string
	if err := kyaml.Unmarshal(raw, &back); err != nil || back != n.Value {
		return 0, 0, errors.New("the marked value must be a one-line scalar")
	}
	start := f.lines[n.Line-1] + off
	return start, start + length, nil
}

// quotedLength is the length of a quoted scalar at the start of text,
// quotes included, or 0 when it does not close on this line.
func quotedLength(text []byte, q byte) int {
	if len(text) == 0 || text[0] != q {
		return 0
	}
	for i := 1; i < len(text); i++ {
		switch {
		case q == '"' && text[i] == '\\':
			i++
		case text[i] == q && q == '\'' && i+1 < len(text) && text[i+1] == '\'':
			i++
		case text[i] == q:
			return i + 1
		}
	}
	return 0
}

// plainLength is the length of a plain scalar at the start of text: up to
// the comment (" #"), trailing blanks dropped.
func plainLength(text []byte) int {
	end := len(text)
	for i := 1; i < len(text); i++ {
		if text[i] == '#' && (text[i-1] == ' ' || text[i-1] == '\t') {
			end = i
			break
		}
	}
	return len(bytes.TrimRight(text[:end], " \t\r"))
}

func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// Edit sets a site to a new value.
type Edit struct {
	Site Site
	New  string
}

// Apply writes edits into data, each new value in the style of the old one
// (a plain value that would no longer read as a string is double-quoted).
// Everything outside the changed values stays byte for byte: comments,
// order, indentation, quotes, line endings. The sites must come from
// FindMarkers on the same data.
func Apply(data []byte, edits []Edit) ([]byte, error) {
	edits = slices.Clone(edits)
	slices.SortFunc(edits, func(a, b Edit) int { return a.Site.start - b.Site.start })
	var out bytes.Buffer
	prev := 0
	for _, e := range edits {
		if e.Site.start < prev || e.Site.end > len(data) {
			return nil, fmt.Errorf("%s: overlapping or stale edit", e.Site.Location())
		}
		if !safeValue(e.New) {
			return nil, fmt.Errorf("%s: refusing to write %q: not an image name, tag or digest", e.Site.Location(), e.New)
		}
		out.Write(data[prev:e.Site.start])
		out.WriteString(render(e.New, e.Site.style))
		prev = e.Site.end
	}
	out.Write(data[prev:])
	return out.Bytes(), nil
}

func render(v string, style kyaml.Style) string {
	switch style {
	case kyaml.DoubleQuotedStyle:
		return `"` + v + `"`
	case kyaml.SingleQuotedStyle:
		return "'" + v + "'"
	}
	var back any
	if err := kyaml.Unmarshal([]byte(v), &back); err != nil || back != any(v) {
		return `"` + v + `"` // 1.10 would read as a number
	}
	return v
}

// safeValue accepts what image names, tags and digests are made of, so a
// hostile registry cannot inject YAML through a tag.
func safeValue(v string) bool {
	if v == "" || len(v) > 512 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._-/:@+", c) >= 0 && i > 0:
		default:
			return false
		}
	}
	return true
}
