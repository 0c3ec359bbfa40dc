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
//   - X-GitHub-Event: "push" triggers; "ping" answers 200 without effect;
//     any other event answers 202 without effect. All of them only once
//     the signature verifies (401 otherwise, so a wrong secret shows in the
//     forge's delivery log).
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
//	202  {"triggered":[]}              signed with one of the receiver's secrets, but no sync with
//	                                    that secret follows that repository (or has that name), or
//	                                    an event other than push and ping: nothing happens
//	400  {"error":"..."}               the body is not the expected JSON, or X-GitHub-Event is missing
//	                                    (to a sender that signs with one of our secrets; 401 otherwise)
//	401  {"error":"..."}               the signature is missing, malformed, or made with none of the
//	                                    receiver's secrets, whatever the body names
//	404                                 another path
//	405                                 a method other than POST
//	413                                 a body larger than Options.MaxBody (1 MiB by default)
//	429                                 this address sent too many refused requests (see below);
//	                                    Retry-After says when to come back
//	503                                 too many deliveries being read at once, in all or from this
//	                                    address (a quarter of the slots each); Retry-After: 1
//
// A 202 says nothing about why nothing happened. Each target has its own
// secret; a delivery triggers exactly the matching targets whose secret
// verifies its signature (compared in constant time), and a target without a
// secret is never triggered. A sender that knows no secret gets 401 whether
// or not the sync or repository it names exists, so names cannot be probed.
// Every sync following the repository is triggered whatever branch was
// pushed: a reconcile whose ref did not move costs one ref listing.
//
// Every delivery's body is read (at most MaxBody) and its signature checked
// before anything else is decided: HMAC is cheap next to what a flood could
// block. Refused deliveries (4xx) draw from a token bucket per source
// address (an IPv6 address counts as its /64) (Options.RateLimit,
// Options.Burst); past it, that address's
// refusals are answered 429 and logged once a minute, not one by one.
// Deliveries that verify are never limited and draw nothing from the bucket,
// so unsigned requests, even from the same address (behind an ingress every
// client has the ingress's address), cannot keep a signed push out; the
// triggers they cause coalesce in each sync's slot of one. Polling still
// catches up with pushes whose webhook was refused.
//
// Logs name the endpoint, the event, the delivery id, the syncs and the
// outcome; never a secret, a signature or a body.
//
// The server around a Receiver should set ReadHeaderTimeout, ReadTimeout
// and MaxHeaderBytes; the body limit is the Receiver's.
package webhook
