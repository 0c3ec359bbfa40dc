package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// nodesError is a document whose aliases expand past the limit, or refer to
// a node that contains them.
type nodesError struct {
	doc   int   // 1-based document index in the file
	limit int64 // the per-document limit
	cycle bool  // an alias refers to a node that contains it
}

func (e *nodesError) Error() string {
	if e.cycle {
		return fmt.Sprintf("document %d: an alias refers to a node that contains it (expanding it never ends)", e.doc)
	}
	return fmt.Sprintf("document %d: more than %d YAML nodes once aliases are expanded (MaxYAMLNodes)", e.doc, e.limit)
}

func (e *nodesError) Unwrap() error { return ErrYAMLNodes }

// errCycle stops counting at an alias that refers to one of its ancestors.
var errCycle = errors.New("alias cycle")

// MaxMappingKeys bounds the keys of one YAML mapping. kustomize's handling
// of a mapping is quadratic in its keys (measured: 5,000 keys 0.2 s, 20,000
// keys 2 s, 50,000 keys 12 s of CPU), and a build cannot be interrupted
// while kustomize works, so one wide mapping in an 8 MiB file could pin a
// core for minutes. Real manifests stay far below (a ConfigMap holds at most
// 1 MiB).
const MaxMappingKeys = 10_000

// MaxWideWork bounds the quadratic part of a whole build: the sum, over
// every mapping and generator of at least wideWorkMin keys, of its keys
// squared. One mapping under MaxMappingKeys costs about a second of CPU;
// without a bound across the build, a commit could hold hundreds of them
// (in files, inline patches or generators) and cost minutes. The bound is
// the work of four mappings of MaxMappingKeys keys (a few seconds).
const MaxWideWork = 4 * MaxMappingKeys * MaxMappingKeys

// wideWorkMin is the width from which a mapping counts against
// MaxWideWork. Below it kustomize's time is dominated by its linear part
// (measured with kustomize api v0.20.1: 100 files of 1,000 keys cost what
// 1,000 files of 100 keys cost), which the size caps bound.
const wideWorkMin = 2_000

// wideCheckMin is the smallest file that can hold a mapping of
// wideWorkMin keys: each key takes two bytes at least (a flow mapping
// {a,b,...} spends one on the key and one on the comma, and keys must
// differ, so most take more); smaller files are not parsed for the checks.
const wideCheckMin = 2 * wideWorkMin

// wideError is a mapping with more keys than MaxMappingKeys.
type wideError struct {
	doc, line, keys int
}

func (e *wideError) Error() string {
	return fmt.Sprintf("document %d: the mapping at line %d has %d keys, more than %d (building it would take minutes of CPU)", e.doc, e.line, e.keys, MaxMappingKeys)
}

func (e *wideError) Unwrap() error { return ErrTooLarge }

// nodeCounter counts the nodes of one document as parsed and as they would
// be once every alias is replaced by a copy of its anchor, which is what
// kyaml does (kio.FromBytes sets AnchorsAweigh) before kustomize works on a
// document. Counting with a memo per anchored node is linear in the parsed
// size, while the expansion itself is exponential: a few hundred bytes of
// nested aliases expand to billions of nodes.
type nodeCounter struct {
	ceiling  int64                // counts saturate here, so they never overflow
	memo     map[*yaml.Node]int64 // expanded size of anchored nodes; -1 while being counted
	literal  int64                // nodes as parsed
	hasAlias bool
	work     int64 // keys squared of the mappings of at least wideWorkMin keys, as parsed
}

// add returns a+b, saturated at the ceiling.
func (c *nodeCounter) add(a, b int64) int64 {
	if a+b > c.ceiling {
		return c.ceiling
	}
	return a + b
}

// expanded returns the expanded size of n (saturated), counting n's own
// subtree into literal. It fails with errCycle on an alias to an ancestor.
func (c *nodeCounter) expanded(n *yaml.Node) (int64, error) {
	if n.Anchor != "" {
		if v, ok := c.memo[n]; ok {
			if v < 0 {
				return 0, errCycle
			}
			return v, nil
		}
		c.memo[n] = -1
	}
	c.literal++
	if n.Kind == yaml.MappingNode {
		keys := int64(len(n.Content) / 2)
		if keys > MaxMappingKeys {
			return 0, &wideError{line: n.Line, keys: int(keys)}
		}
		if keys >= wideWorkMin {
			c.work += keys * keys
		}
	}
	total := int64(1)
	for _, child := range n.Content {
		var size int64
		var err error
		if child.Kind == yaml.AliasNode && child.Alias != nil {
			c.literal++ // the alias node itself is parsed text
			c.hasAlias = true
			size, err = c.alias(child.Alias)
		} else {
			size, err = c.expanded(child)
		}
		if err != nil {
			return 0, err
		}
		total = c.add(total, size)
	}
	if n.Anchor != "" {
		c.memo[n] = total
	}
	return total, nil
}

// alias returns the expanded size of an alias's anchor. YAML defines an
// anchor before any alias to it, so the anchor has been counted already
// unless it is an ancestor of the alias (a cycle, which kyaml would expand
// forever); a tree built some other way is counted from scratch.
func (c *nodeCounter) alias(target *yaml.Node) (int64, error) {
	if v, ok := c.memo[target]; ok {
		if v < 0 {
			return 0, errCycle
		}
		return v, nil
	}
	saved := c.literal
	v, err := c.expanded(target)
	c.literal = saved // not parsed text at this place
	return v, err
}

// nodeCount is what countNodes found in one document.
type nodeCount struct {
	expanded int64 // nodes once aliases are expanded, saturated at limit+1
	literal  int64 // nodes as parsed
	hasAlias bool
	work     int64 // see nodeCounter.work
}

// overLimit reports whether the document uses aliases and expands past
// limit. A document without aliases is never over: its size is bounded by
// the per-file size cap, and refusing it here would make the outcome
// depend on whether some unrelated alias exists.
func (n nodeCount) overLimit(limit int64) bool {
	return n.hasAlias && n.expanded > limit
}

// extra is the number of nodes alias expansion adds to the document.
func (n nodeCount) extra() int64 {
	if !n.hasAlias || n.expanded <= n.literal {
		return 0
	}
	return n.expanded - n.literal
}

// countNodes counts the nodes of doc as parsed and once aliases are
// expanded (saturating just above limit); it fails with errCycle when an
// alias contains itself.
func countNodes(doc *yaml.Node, limit int64) (nodeCount, error) {
	c := &nodeCounter{ceiling: limit + 1, memo: map[*yaml.Node]int64{}}
	exp, err := c.expanded(doc)
	if err != nil {
		return nodeCount{}, err
	}
	return nodeCount{expanded: exp, literal: c.literal, hasAlias: c.hasAlias, work: c.work}, nil
}

// separator is kyaml's YAML document separator (kio.splitDocuments): any
// line starting with "---".
var separator = regexp.MustCompile(`\n---.*\n`)

// splitDocuments splits data the way kyaml's reader does before it parses
// each piece on its own: CRLF becomes LF, then every line that starts with
// "---" separates two pieces. Screening the same pieces kyaml parses means
// that no document kyaml expands escapes the screen.
func splitDocuments(data []byte) []string {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	if s == "" {
		return nil
	}
	var docs []string
	prev := 0
	for _, loc := range separator.FindAllStringIndex(s, -1) {
		docs = append(docs, s[prev:loc[0]])
		prev = loc[1]
	}
	return append(docs, s[prev:])
}

// screenYAML checks every YAML document in data against the per-document
// node limit and the mapping width, and returns how many nodes alias
// expansion adds over the whole file (the expanded count minus the parsed
// count) and the file's wide work (see MaxWideWork), which the build adds
// up against its own budgets. Data that does not parse as YAML is not
// screened past the point where parsing fails: kyaml stops there too, so
// nothing after it is ever expanded. A piece that holds more than one
// document (kyaml reads only the first) is screened whole, to be safe.
func screenYAML(data []byte, limit int64) (extra, work int64, err error) {
	if !bytes.ContainsAny(data, "*") && len(data) < wideCheckMin {
		// Without an alias, expansion adds nothing, and a small file
		// cannot hold a mapping of wideWorkMin keys; parsing every file a
		// second time would be wasted work (the per-file size cap already
		// bounds what a file without aliases can hold).
		return 0, 0, nil
	}
	for i, piece := range splitDocuments(data) {
		dec := yaml.NewDecoder(strings.NewReader(piece))
		for {
			var doc yaml.Node
			if derr := dec.Decode(&doc); derr != nil {
				if derr == io.EOF {
					break
				}
				break // not YAML (any more): kyaml fails here too
			}
			n, cerr := countNodes(&doc, limit)
			var wide *wideError
			if errors.As(cerr, &wide) {
				wide.doc = i + 1
				return 0, 0, wide
			}
			if cerr != nil {
				return 0, 0, &nodesError{doc: i + 1, limit: limit, cycle: true}
			}
			if n.overLimit(limit) {
				return 0, 0, &nodesError{doc: i + 1, limit: limit}
			}
			extra += n.extra()
			work += n.work
		}
	}
	return extra, work, nil
}
