// Package source turns "repository URL + ref" into an Artifact: one revision
// checked out on local disk. It is tether's only contact with git.
//
// A Git source polls cheaply: every Fetch first lists the remote's refs (one
// round trip); when the ref still points at the commit it fetched last time,
// nothing else happens. Otherwise it fetches just that ref, shallowly (depth
// 1), into a scratch object store, writes the tree into a fresh directory and
// publishes it by renaming a symlink over Dir/current, so readers never see a
// half-written tree. The current and the previous checkout are kept.
//
// What a server sends is bounded before it is trusted: the transfer is cut
// off past MaxSize plus room for history, the pack is spooled to disk and
// its object headers are checked (no object, and no delta's result, over
// MaxSize; not too much in all; not too many objects) before go-git, which
// holds each object whole in memory, indexes it; the tree is walked and
// every entry (directories and submodules too) counted against MaxFiles
// before anything is written. Every HTTP answer is read only up to a cap.
//
// A published checkout is synced to disk before it becomes current, and its
// content digest is recorded next to it; a restarted source serves it again
// only if the digest still matches, and fetches it again otherwise.
//
// git is spoken by go-git (github.com/go-git/go-git/v5) at the transport
// level, per call: no global protocol registry is touched, so sources with
// different CAs, credentials and counters run side by side. HTTPS uses
// go-git's smart HTTP client over an http.Client built here; SSH uses
// golang.org/x/crypto/ssh directly (dialled with the caller's context, with
// mandatory known_hosts checking) and go-git's protocol encoders.
//
// Credentials are read from files or environment variables on every fetch,
// so a rotated Kubernetes Secret takes effect without a restart, and they
// never reach an error, a log line or a revision: URLs are shown through
// Redact and every error is scrubbed of the secret values in use.
//
// A Local source follows a plain folder for development: its revision is a
// hash of the content, published only when two reads of the folder agree,
// and Watch raises debounced triggers on changes.
//
// The pure cores (ParseRef, ref resolution, semver selection, revision
// formatting, URL redaction, the debouncer) are separate functions with
// table tests; the network and file system code wraps them.
package source
