// Package audit records zonegate's system log and delivers it to event hooks.
//
// # System log
//
// [Log.Record] takes an [Event] (shaped after Okta's System Log: actor, targets, outcome, reason)
// without blocking its caller: events go through a buffered channel to one background writer,
// which stores each as a record of kind "audit_event" whose owner is the event's hour
// ("h:2006010215", UTC) and which expires Retention (default 90 days) after the event's time.
// When the buffer is full Record waits at most 50 ms, then drops the event and counts it
// ([Log.Dropped]). Every recorded event is also written to the slog logger at the level its
// Severity names. [Log.Query] walks the hour buckets of a [Filter]'s time range in order and
// returns a [Page] of matching events, oldest first, with a cursor for the next page.
//
// Event ids sort by time: "20261122T191958.123456789Z-1a2b3c4d", the UTC time to the nanosecond
// then 8 hex digits from a per-Log counter that starts at a random value, so events of one Log
// with the same time keep the order they were recorded in.
//
// # Event hooks
//
// A [Hook] receives the events whose type it chose, one POST per event, signed with its secret.
// Deliveries are queued in the store (kind "audit_delivery", owner "hook:<name>") by the same
// writer that stores the event, so they survive a restart. Each Log runs one dispatcher; several
// gateways sharing a store each run one, and a delivery is claimed with a compare-and-swap lease
// (30 s) so only one of them sends it. A hook gets one delivery at a time from each node, oldest
// due first. A 2xx answer completes a delivery; anything else (redirects are not followed) is
// retried after a backoff that starts at 1 s and doubles up to 10 min, with jitter, until
// MaxAttempts (default 12); then the delivery is abandoned, counted ([Log.DeliveryFailures]) and
// recorded as an "event_hook.delivery.abandon" event, which is never sent to the hook it is
// about.
//
// Delivery request:
//
//	POST <hook URL>
//	Content-Type: application/json
//	User-Agent: zonegate
//	X-Zonegate-Event-Id: <event id>
//	X-Zonegate-Timestamp: <unix seconds>
//	X-Zonegate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//
//	{"eventType": "user.session.start", "eventId": "...", "eventTime": "<RFC 3339>",
//	 "data": {"events": [{...the event...}]}}
//
// A receiver checks the signature with [Verify] (or any HMAC-SHA256 implementation, as in the
// shell example below) over the raw body before parsing it, refuses timestamps more than a few
// minutes from its clock, and may use the event id to drop the rare duplicate (delivery is at
// least once).
//
//	sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//	[ "v1=$sig" = "$header" ]
//
// # Verification handshake
//
// Before its first delivery to a hook name and URL, the dispatcher proves that the receiver is
// willing: it sends
//
//	GET <hook URL>
//	X-Zonegate-Verification-Challenge: <32 random hex digits>
//	X-Zonegate-Timestamp: <unix seconds>
//	X-Zonegate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<challenge>")>
//
// and the receiver must answer 200 with the JSON {"verification": "<the same challenge>"}. Until
// it does, the hook's deliveries stay queued (the handshake is retried with backoff); none is
// sent. The outcome is kept in the store (kind "audit_hookstate", id the hook name) with a hash
// of the URL, so a changed URL is verified again.
package audit
