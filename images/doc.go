// Package images keeps container image tags moving by policy, with git as
// the source of truth. It never applies anything to the cluster itself:
// it writes commits, and the sync applies them like any other commit.
//
// The parts, one file each:
//
//   - policy.go: tag policies (semver range, alphabetical, numerical; a
//     filter regular expression with a named extract group; exclusions),
//     pure and table-tested, and a Selector that keeps the best tags of a
//     stream in bounded memory.
//   - registry.go, gate.go: listing a repository's tags with
//     go-containerregistry, page by page (every answer capped), with the
//     credentials read from their files on every scan, a custom CA, and one
//     wait per registry host after a 429 (Retry-After honoured, capped).
//   - marker.go, rewrite.go: the markers in manifests and the byte-exact
//     rewrite of the values they mark (kyaml finds the nodes and their
//     positions; the new scalar is spliced into the original bytes).
//   - decide.go: which values move to which tag (forward only, never to a
//     tag whose rollout failed or that is at or below the watermark of
//     forgotten failures, not while a manual rollback holds the policy;
//     back to the last good tag only from a failed tag tether wrote).
//   - writeback.go, message.go: one commit per round with every change,
//     pushed over HTTPS or SSH with the sync's own credentials (package
//     source); a push that races another commit is redone on the new tip.
//   - branch.go: where a round on a separate push branch builds (on it,
//     from the sync's branch again once merged, or a merge of both), never
//     forcing.
//   - rollout.go, records.go: the rollout gate (following the workloads
//     whose image changed until kstatus says Current or Failed) and the
//     records it keeps in a ConfigMap per sync.
//
// # Markers
//
// A YAML comment at the end of the line of the value to update names the
// policy:
//
//	image: registry.example.com/app:1.0.0 # tether:image app
//	image: registry.example.com/app:1.0.0 # tether:image app pin
//	images:
//	  - name: app
//	    newName: registry.example.com/app # tether:image app:name
//	    newTag: 1.0.0                     # tether:image app:tag
//	    digest: sha256:...                # tether:image app:digest
//
// No field marks the whole reference (name:tag); ":tag", ":name" and
// ":digest" mark a part; "pin" keeps the value as it is and reports it.
// A malformed marker, one naming no policy and one that is not at the end
// of a one-line value are reported with file and line; the other markers
// still work.
package images
