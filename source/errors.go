package source

import "errors"

// Kinds of failure a caller may want to tell apart (for a status reason or a
// metric label); match them with errors.Is. Every error also names the URL
// (redacted) and the ref or file involved in its message.
var (
	// ErrRefNotFound: the branch, tag or commit is not on the remote (or no
	// tag satisfies the semver range), for example after it was deleted.
	ErrRefNotFound = errors.New("not found")
	// ErrAuthFailed: the server refused the credentials, or wanted some and
	// none were configured.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrHostKey: the SSH server's host key is not in known_hosts or does
	// not match it.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrNotRepository: the URL does not lead to a git repository (or the
	// repository has no commits).
	ErrNotRepository = errors.New("not a git repository")
	// ErrTooLarge: the transfer or the checkout is over MaxSize or
	// MaxFiles.
	ErrTooLarge = errors.New("over the size limit")
	// ErrTimeout: the operation did not finish within Timeout.
	ErrTimeout = errors.New("timed out")
	// ErrUnsafeTree: the commit holds a path that cannot be checked out
	// safely (".git", "..", a name with a slash) or an unsupported entry.
	ErrUnsafeTree = errors.New("unsafe tree")
)

// kindError is an error of one of the kinds above whose message does not
// repeat the kind's text.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
