// Package webhook receives push notifications and turns them into immediate
// reconciles. A Receiver is an http.Handler meant for a listener of its own
// (not the metrics or health port); it triggers syncs by name through a
// callback and does nothing else, so a burst of deliveries is coalesced by
// the caller's trigger slot.
//
// # Endpoints
//
// POST /hooks/github receives GitHub (and Gitea, Forgejo, GitHub
// Enterprise) webhooks:
//
//   - X-GitHub-Event: "push" triggers; "ping" answers 200 without effect
//     (401 when it names a repository of ours and the signature does not
//     verify, so a wrong secret shows in the forge's delivery log); any
//     other event answers 202 without effect.
//   - X-Hub-Signature-256: "sha256=" followed by the hex HMAC-SHA256 of the
//     raw body, keyed with the webhook secret. Required for every event.
//   - Body: the event JSON (content type application/json, or
//     application/x-www-form-urlencoded with the JSON in "payload"). The
//     sync is found by repository.clone_url, repository.ssh_url and
//     repository.html_url, compared with each target's RepoURL after
//     NormalizeURL.
//
// POST /hooks/generic is for anything else (CI jobs, other forges, scripts):
//
//   - X-Tether-Signature: "sha256=<hex HMAC-SHA256 of the raw body>", as
//     above.
//   - Body: {"repository": "<url>"} triggers the syncs following that
//     repository; {"sync": "<name>"} triggers that sync. Exactly one of the
//     two; unknown fields are refused.
//
// For example:
//
//	body='{"sync":"webapp-dev"}'
//	sig=$(printf %s "$body" | openssl dgst -sha256 -hmac "$(cat secret)" -r | cut -d' ' -f1)
//	curl -X POST -H "X-Tether-Signature: sha256=$sig" -d "$body" http://tether:9443/hooks/generic
//
// # Answers
//
// Every answer is JSON.
//
//	200  {"triggered":["webapp-dev"]}  a push (or generic call) whose signature verified;
//	                                    ping: {"triggered":[]}
//	202  {"triggered":[]}              no sync follows that repository (or has that name), or an
//	                                    event other than push and ping: nothing happens
//	400  {"error":"..."}               the body is not the expected JSON, or X-GitHub-Event is missing
//	401  {"error":"..."}               the signature is missing, malformed, or made with a secret no
//	                                    matching sync has
//	404                                 another path
//	405                                 a method other than POST
//	413                                 a body larger than Options.MaxBody (1 MiB by default)
//	429                                 over the rate limit; Retry-After says when to come back
//
// A 202 says nothing about why nothing happened. Each target has its own
// secret; a delivery triggers exactly the matching targets whose secret
// verifies its signature (compared in constant time), and a target without a
// secret is never triggered. Every sync following the repository is
// triggered whatever branch was pushed: a reconcile whose ref did not move
// costs one ref listing.
//
// The rate limit is one token bucket for the whole receiver (behind an
// ingress every client has the same address): it protects the agent, not
// fairness between senders. Polling still catches up with pushes whose
// webhook was refused.
//
// Logs name the endpoint, the event, the delivery id, the syncs and the
// outcome; never a secret, a signature or a body.
//
// The server around a Receiver should set ReadHeaderTimeout, ReadTimeout
// and MaxHeaderBytes; the body limit is the Receiver's.
package webhook
