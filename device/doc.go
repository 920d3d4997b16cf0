// Package device identifies devices and keeps their posture: registry, compliance, and the MDM webhook.
//
// # Identity
//
// [CertIdentity] reads a device id from the client certificate Caddy verified (tls client_auth):
// only a verified chain counts, never a certificate the client merely presented.
//
// # Registry
//
// [Registry] stores [Device] records (kind "device", owner-indexed by the device's user, plus a
// "device_serial" serial -> id index). A device that turns non-compliant is suspended; turning
// compliant again lifts that suspension but not one an administrator set. Callbacks registered
// with [Registry.OnChange] run after a device's compliance or suspension changes, so sessions on
// it can be ended. [Device.Trust] condenses the posture into TRUSTED, NOT_TRUSTED or UNKNOWN.
//
// # MDM compliance webhook
//
// [Webhook] is an http.Handler the MDM (or a small script translating its events) calls to report
// a device's compliance. The MDM is authoritative: an unknown device is created (Source "mdm"), a
// known one updated.
//
// Request:
//
//	POST <path>
//	Content-Type: application/json
//	X-Zonegate-Timestamp: <unix seconds>
//	X-Zonegate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//
//	{"device_id": "...", "serial": "...", "compliance": "compliant|noncompliant|unknown",
//	 "platform": "...", "managed": true, "user": "..."}
//
// compliance is required, and device_id or serial (or both). platform, managed and user are
// optional: left out, a known device keeps its value. With only a serial, the device holding that
// serial is updated, or a new device is created whose id is the serial. Unknown fields are
// rejected. The signature header may list several comma-separated values (v1=...,v1=...) while a
// secret is being rotated; entries of other schemes are ignored. Any configured secret verifies.
//
// Responses (errors carry a JSON body {"error": "..."}):
//
//	204  applied
//	400  bad JSON or fields
//	401  missing or bad signature, or a timestamp more than MaxSkew (default 5m) away ("stale")
//	405  not POST
//	409  replay: the same signature was already accepted within the skew window; or the serial
//	     belongs to a device with another id
//	413  body over 64 KiB
//	415  Content-Type is not application/json
//	503  the store failed (retry later)
//
// Accepted signatures are remembered in the store (kind "device_webhook_sig") until their
// timestamp goes stale, so every gateway sharing the store refuses a replay. Example:
//
//	body='{"device_id":"A1B2C3","compliance":"noncompliant","managed":true,"user":"alice"}'
//	ts=$(date +%s)
//	sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//	curl -X POST https://gw.example.com/mdm/compliance -H 'Content-Type: application/json' \
//	  -H "X-Zonegate-Timestamp: $ts" -H "X-Zonegate-Signature: v1=$sig" -d "$body"
package device
