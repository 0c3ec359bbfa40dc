package render

import (
	"errors"
	"strings"
)

// Categories of refusals and failures. Every error Build returns about the
// content of the checkout is an *Error (only bad Options and an unreadable
// Root are not); its Err is (or wraps) one of these when the error belongs
// to one of the categories, so callers can tell them apart with errors.Is.
var (
	// ErrRemote: a kustomization names something outside the checkout by URL
	// (http, https, ssh, file and git URLs, github.com shorthands). tether
	// renders only what is in the checkout, and fetching would reach the
	// network or run git.
	ErrRemote = errors.New("remote resources are not allowed")

	// ErrPlugin: a generator, transformer or validator is not one of
	// kustomize's built-in plugins: exec and Go plugins and KRM functions
	// (containers, executables, starlark) would run code from the repository.
	ErrPlugin = errors.New("plugins and KRM functions are not allowed")

	// ErrHelm: a kustomization inflates a helm chart, which runs the helm
	// binary and usually downloads the chart.
	ErrHelm = errors.New("helm charts are not allowed")

	// ErrEscape: a path, through ".." or a symlink, leads outside the
	// checkout (or the build is asked for an absolute path).
	ErrEscape = errors.New("path leads outside the checkout")

	// ErrTooLarge: a file, the input read or the rendered output is over
	// its size limit.
	ErrTooLarge = errors.New("size limit exceeded")

	// ErrYAMLNodes: a YAML document has more nodes than allowed once its
	// aliases are expanded (or its aliases refer to themselves), or the
	// build's aliases together expand to more than the limit.
	ErrYAMLNodes = errors.New("too many YAML nodes after alias expansion")

	// ErrNotObject: a plain YAML file holds a document that is not a
	// Kubernetes object.
	ErrNotObject = errors.New("not a Kubernetes object")

	// ErrInvalid: a rendered object lacks apiVersion, kind or name, or has an
	// invalid name or namespace.
	ErrInvalid = errors.New("invalid object")

	// ErrDuplicate: two rendered objects have the same group, kind,
	// namespace and name.
	ErrDuplicate = errors.New("duplicate object")

	// ErrProvenance: tether cannot tell, exactly, which file an object came
	// from.
	ErrProvenance = errors.New("cannot tell which file the object came from")
)

// Error is a refusal or failure of Build. It names the file (relative to
// Options.Root, slash-separated), the entry of a kustomization, the document
// or the object concerned, and why. Use errors.As to get it and errors.Is
// with the Err* categories to classify it.
type Error struct {
	// File is the file the error is about, relative to the checkout root,
	// slash-separated; empty when the error concerns no single file.
	File string
	// Entry is the kustomization entry (`resources[2] "../base"`), the
	// document (`document 3`) or the object (`Deployment/shop/web`)
	// concerned; it may be empty.
	Entry string
	// Reason is the complete explanation, including the text of Err where
	// that helps.
	Reason string
	// Err is the category (one of the Err* variables) or the underlying
	// cause, for errors.Is and errors.As; it may be nil.
	Err error
}

// Error returns "File: Entry: Reason", leaving out the parts that are empty.
func (e *Error) Error() string {
	parts := make([]string, 0, 3)
	if e.File != "" {
		parts = append(parts, e.File)
	}
	if e.Entry != "" {
		parts = append(parts, e.Entry)
	}
	reason := e.Reason
	if reason == "" && e.Err != nil {
		reason = e.Err.Error()
	}
	parts = append(parts, reason)
	return strings.Join(parts, ": ")
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// refusal builds an *Error of one of the categories, with the category's
// text first and an optional detail after it.
func refusal(file, entry string, category error, detail string) *Error {
	reason := category.Error()
	if detail != "" {
		reason += ": " + detail
	}
	return &Error{File: file, Entry: entry, Reason: reason, Err: category}
}
