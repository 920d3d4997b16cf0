package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zonegate/zonegate/store"
)

const (
	// leaseDuration is how long a claimed delivery belongs to the node that claimed it.
	leaseDuration = 30 * time.Second
	// requestTimeout bounds one hook request, well inside the lease.
	requestTimeout = leaseDuration - 5*time.Second
	// firstBackoff and maxBackoff bound the wait between attempts.
	firstBackoff = time.Second
	maxBackoff   = 10 * time.Minute
	// failurePause is how long a node leaves a hook alone after a failed request, so a receiver
	// that is down is not sent every queued delivery in a row.
	failurePause = time.Second
	// maxBatch is how many due deliveries one listing hands to a worker.
	maxBatch = 64
	// maxAnswer bounds what is read of a receiver's answer.
	maxAnswer = 64 << 10
	// userAgent is sent with every hook request.
	userAgent = "zonegate"
)

// delivery is a queued hook delivery (kind audit_delivery).
type delivery struct {
	EventID     string          `json:"eventId"`
	Event       json.RawMessage `json:"event"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"nextAttempt"`
	LeaseUntil  time.Time       `json:"leaseUntil"`
	LastError   string          `json:"lastError,omitempty"`
}

// hookState is a hook's verification state (kind audit_hookstate, id the hook name).
type hookState struct {
	URLHash    string    `json:"urlHash"`
	Verified   bool      `json:"verified"`
	VerifiedAt time.Time `json:"verifiedAt"`
}

// hookRuntime is a configured hook and the dispatcher's state for it. The first group never
// changes; the second is touched only by the dispatcher goroutine.
type hookRuntime struct {
	hook    Hook
	secret  []byte
	owner   string // store owner of its deliveries
	urlHash string
	logURL  string // the URL without its query, for logs

	busy        bool      // a worker is sending its deliveries
	verified    bool      // the handshake for this URL is known to have succeeded
	pausedUntil time.Time // after a failure
	idleUntil   time.Time // nothing due before then (as of the last listing)
	hsFailures  int       // failed handshakes in a row
}

func newHookRuntime(h Hook) *hookRuntime {
	sum := sha256.Sum256([]byte(h.URL))
	return &hookRuntime{
		hook:    h,
		secret:  []byte(h.Secret),
		owner:   "hook:" + h.Name,
		urlHash: hex.EncodeToString(sum[:]),
		logURL:  redactRawURL(h.URL),
	}
}

// deliveryID is the store id of the delivery of eventID to hook name.
func deliveryID(name, eventID string) string { return name + "/" + eventID }

// enqueue stores a delivery of the event (its JSON) to h, due now.
func (l *Log) enqueue(h *hookRuntime, eventID string, event []byte) error {
	b, err := json.Marshal(delivery{EventID: eventID, Event: event})
	if err != nil {
		return fmt.Errorf("encoding a delivery: %w", err)
	}
	err = l.withRetry(func(ctx context.Context) error {
		return l.st.Create(ctx, store.Record{Kind: KindDelivery, ID: deliveryID(h.hook.Name, eventID), Owner: h.owner, Value: b, ExpiresAt: l.now().Add(l.retention)})
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil
	}
	return err
}

// Backlog returns the number of queued deliveries of each configured hook.
func (l *Log) Backlog(ctx context.Context) (map[string]int, error) {
	out := make(map[string]int, len(l.hooks))
	for _, h := range l.hooks {
		rs, err := l.st.ListByOwner(ctx, KindDelivery, h.owner)
		if err != nil {
			return nil, fmt.Errorf("audit: counting the deliveries of hook %q: %w", h.hook.Name, err)
		}
		out[h.hook.Name] = len(rs)
	}
	return out, nil
}

// resultKind is what a worker did.
type resultKind int

const (
	resNothing         resultKind = iota // no delivery could be claimed
	resDelivered                         // every claimed delivery went through
	resFailed                            // a request failed (the delivery was rescheduled or abandoned)
	resHandshakeFailed                   // the receiver did not pass the handshake
	resStoreError                        // the store failed
	resCancelled                         // shutdown
)

// result is a worker's report to the dispatcher.
type result struct {
	hook     *hookRuntime
	kind     resultKind
	verified bool      // the worker found or made the hook verified
	at       time.Time // when the outcome happened (a pause counts from then)
}

// dispatchLoop runs until ctx ends: it looks for due deliveries on new work and every pollEvery,
// hands each hook's to a worker goroutine (one per hook at a time), and applies the workers'
// results.
func (l *Log) dispatchLoop(ctx context.Context) {
	defer close(l.dispatchDone)
	if len(l.hooks) == 0 {
		<-ctx.Done()
		return
	}
	results := make(chan result)
	var wg sync.WaitGroup
	tick := time.NewTicker(l.pollEvery)
	defer tick.Stop()
	for {
		l.dispatchPass(ctx, results, &wg)
		select {
		case <-ctx.Done():
			go func() { wg.Wait(); close(results) }()
			for range results {
			}
			return
		case <-l.wake:
			for _, h := range l.hooks {
				h.idleUntil = time.Time{}
			}
		case r := <-results:
			l.apply(r)
		case <-tick.C:
		}
	}
}

// apply updates a hook's dispatcher state with a worker's result.
func (l *Log) apply(r result) {
	h, now := r.hook, r.at
	h.busy = false
	if r.verified {
		h.verified, h.hsFailures = true, 0
	}
	switch r.kind {
	case resDelivered:
		h.idleUntil = time.Time{} // look again at once
	case resFailed, resStoreError:
		h.pausedUntil = now.Add(failurePause)
	case resHandshakeFailed:
		h.hsFailures++
		h.pausedUntil = now.Add(backoff(h.hsFailures, mrand.Float64()))
	}
}

// dispatchPass starts a worker for each idle hook that has due deliveries.
func (l *Log) dispatchPass(ctx context.Context, results chan<- result, wg *sync.WaitGroup) {
	for _, h := range l.hooks {
		if ctx.Err() != nil {
			return
		}
		now := l.now()
		if h.busy || now.Before(h.pausedUntil) || now.Before(h.idleUntil) {
			continue
		}
		due, idle, err := l.due(ctx, h, now)
		if err != nil {
			if ctx.Err() == nil {
				l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: listing event hook deliveries failed",
					slog.String("hook", h.hook.Name), slog.String("error", err.Error()))
			}
			h.pausedUntil = now.Add(failurePause)
			continue
		}
		h.idleUntil = idle
		if len(due) == 0 {
			continue
		}
		h.busy = true
		wg.Add(1)
		go func(h *hookRuntime, verified bool) {
			defer wg.Done()
			results <- l.work(ctx, h, verified, due)
		}(h, h.verified)
	}
}

// due returns the ids of h's deliveries that are due at now, oldest first (at most maxBatch), and,
// when there are none, the time before which none will be (capped at now + scanCap).
func (l *Log) due(ctx context.Context, h *hookRuntime, now time.Time) (ids []string, idleUntil time.Time, err error) {
	rs, err := l.st.ListByOwner(ctx, KindDelivery, h.owner)
	if err != nil {
		return nil, time.Time{}, err
	}
	idleUntil = now.Add(l.scanCap)
	for _, r := range rs {
		var d delivery
		if err := json.Unmarshal(r.Value, &d); err != nil {
			l.logger.LogAttrs(ctx, slog.LevelError, "audit: dropping an unreadable hook delivery",
				slog.String("hook", h.hook.Name), slog.String("id", r.ID), slog.String("error", err.Error()))
			if derr := l.st.Delete(ctx, KindDelivery, r.ID); derr != nil {
				return nil, time.Time{}, derr
			}
			continue
		}
		next := d.NextAttempt
		if d.LeaseUntil.After(next) {
			next = d.LeaseUntil
		}
		if next.After(now) {
			if next.Before(idleUntil) {
				idleUntil = next
			}
			continue
		}
		ids = append(ids, r.ID)
	}
	if len(ids) > 0 {
		idleUntil = time.Time{}
	}
	slices.Sort(ids) // ids end in the event id, which sorts by time
	if len(ids) > maxBatch {
		ids = ids[:maxBatch]
	}
	return ids, idleUntil, nil
}

// errNotClaimable aborts a claim: the delivery is leased to another node or not due yet.
var errNotClaimable = errors.New("delivery not claimable")

// errLostLease aborts an update: the lease this node held has passed to another node.
var errLostLease = errors.New("delivery lease lost")

// errAbandon aborts an update: the delivery has used its attempts and is to be deleted.
var errAbandon = errors.New("delivery abandoned")

// work sends h's due deliveries in order, one at a time, until one fails. It first makes sure
// the receiver passed the handshake.
func (l *Log) work(ctx context.Context, h *hookRuntime, verified bool, ids []string) (res result) {
	res = result{hook: h, kind: resNothing, verified: verified}
	defer func() {
		if res.at.IsZero() {
			res.at = l.now()
		}
	}()
	if !verified {
		ok, err := l.ensureVerified(ctx, h)
		res.at = l.now()
		switch {
		case ctx.Err() != nil:
			res.kind = resCancelled
			return res
		case err != nil:
			l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: reading or saving event hook state failed",
				slog.String("hook", h.hook.Name), slog.String("error", err.Error()))
			res.kind = resStoreError
			return res
		case !ok:
			res.kind = resHandshakeFailed
			return res
		}
		res.verified = true
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			res.kind = resCancelled
			return res
		}
		d, lease, err := l.claim(ctx, id)
		if errors.Is(err, errNotClaimable) || errors.Is(err, store.ErrNotFound) {
			continue // another node has it, or it is done
		}
		if err != nil {
			if ctx.Err() == nil {
				l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: claiming an event hook delivery failed",
					slog.String("hook", h.hook.Name), slog.String("error", err.Error()))
			}
			res.kind = resStoreError
			return res
		}
		switch k, at := l.deliver(ctx, h, id, d, lease); k {
		case resDelivered:
			res.kind = resDelivered
		default:
			res.kind, res.at = k, at
			return res
		}
	}
	return res
}

// claim leases a due delivery to this node (compare-and-swap through Update).
func (l *Log) claim(ctx context.Context, id string) (delivery, time.Time, error) {
	var d delivery
	var lease time.Time
	_, err := l.st.Update(ctx, KindDelivery, id, func(r store.Record) (store.Record, error) {
		d = delivery{}
		if err := json.Unmarshal(r.Value, &d); err != nil {
			return r, fmt.Errorf("decoding delivery %s: %w", id, err)
		}
		now := l.now()
		if d.LeaseUntil.After(now) || d.NextAttempt.After(now) {
			return r, errNotClaimable
		}
		lease = now.Add(leaseDuration)
		d.LeaseUntil = lease
		b, err := json.Marshal(d)
		if err != nil {
			return r, fmt.Errorf("encoding delivery %s: %w", id, err)
		}
		r.Value = b
		return r, nil
	})
	return d, lease, err
}

// eventHead is the part of a stored event a delivery's envelope needs.
type eventHead struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
}

// payload is HookPayload with the event kept as the stored JSON.
type payload struct {
	EventType string `json:"eventType"`
	EventID   string `json:"eventId"`
	EventTime string `json:"eventTime"`
	Data      struct {
		Events []json.RawMessage `json:"events"`
	} `json:"data"`
}

// deliver POSTs a claimed delivery and records the outcome, and says when the request ended.
func (l *Log) deliver(ctx context.Context, h *hookRuntime, id string, d delivery, lease time.Time) (resultKind, time.Time) {
	var head eventHead
	if err := json.Unmarshal(d.Event, &head); err != nil {
		l.logger.LogAttrs(ctx, slog.LevelError, "audit: dropping a hook delivery with an unreadable event",
			slog.String("hook", h.hook.Name), slog.String("id", id), slog.String("error", err.Error()))
		l.deleteDelivery(ctx, id)
		return resDelivered, l.now()
	}
	p := payload{EventType: head.Type, EventID: d.EventID, EventTime: head.Time.UTC().Format(time.RFC3339Nano)}
	p.Data.Events = []json.RawMessage{d.Event}
	body, err := json.Marshal(p)
	if err != nil {
		l.logger.LogAttrs(ctx, slog.LevelError, "audit: encoding a hook delivery failed",
			slog.String("hook", h.hook.Name), slog.String("id", id), slog.String("error", err.Error()))
		l.deleteDelivery(ctx, id)
		return resDelivered, l.now()
	}

	failure := l.post(ctx, h, d.EventID, body)
	at := l.now()
	if ctx.Err() != nil {
		l.release(ctx, id, lease)
		return resCancelled, at
	}
	if failure == "" {
		l.deleteDelivery(ctx, id)
		l.logger.LogAttrs(ctx, slog.LevelDebug, "audit: event delivered to hook",
			slog.String("hook", h.hook.Name), slog.String("event", d.EventID))
		return resDelivered, at
	}
	l.reschedule(ctx, h, id, lease, failure, at)
	return resFailed, at
}

// post sends body to the hook and returns "" on a 2xx answer, else what went wrong.
func (l *Log) post(ctx context.Context, h *hookRuntime, eventID string, body []byte) string {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, h.hook.URL, bytes.NewReader(body))
	if err != nil {
		return "building the request failed"
	}
	ts := strconv.FormatInt(l.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderEventID, eventID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(h.secret, ts, body))
	resp, err := l.client.Do(req)
	if err != nil {
		return requestError(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	return ""
}

// requestError describes a failed request without the URL (whose query may hold a token).
func requestError(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if ue.Timeout() {
			return "request timed out"
		}
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return "request failed: " + msg
}

// reschedule records a failed attempt: the delivery is retried after a backoff, or abandoned
// once it has used its attempts.
func (l *Log) reschedule(ctx context.Context, h *hookRuntime, id string, lease time.Time, failure string, at time.Time) {
	var d delivery
	_, err := l.st.Update(ctx, KindDelivery, id, func(r store.Record) (store.Record, error) {
		d = delivery{}
		if err := json.Unmarshal(r.Value, &d); err != nil {
			return r, fmt.Errorf("decoding delivery %s: %w", id, err)
		}
		if !d.LeaseUntil.Equal(lease) {
			return r, errLostLease
		}
		d.Attempts++
		d.LastError = failure
		if d.Attempts >= h.hook.maxAttempts() {
			return r, errAbandon
		}
		d.NextAttempt = at.Add(backoff(d.Attempts, mrand.Float64()))
		d.LeaseUntil = time.Time{}
		b, err := json.Marshal(d)
		if err != nil {
			return r, fmt.Errorf("encoding delivery %s: %w", id, err)
		}
		r.Value = b
		return r, nil
	})
	switch {
	case err == nil:
		l.logger.LogAttrs(ctx, slog.LevelDebug, "audit: event hook delivery failed; will retry",
			slog.String("hook", h.hook.Name), slog.String("event", d.EventID), slog.Int("attempts", d.Attempts),
			slog.Time("next_attempt", d.NextAttempt), slog.String("error", failure))
	case errors.Is(err, errAbandon):
		l.abandon(ctx, h, id, d)
	case errors.Is(err, errLostLease), errors.Is(err, store.ErrNotFound):
		// Another node took over (this request outlived the lease); it decides.
	default:
		l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: recording a failed hook delivery failed",
			slog.String("hook", h.hook.Name), slog.String("id", id), slog.String("error", err.Error()))
	}
}

// abandon deletes a delivery that used its attempts, counts it and records why.
func (l *Log) abandon(ctx context.Context, h *hookRuntime, id string, d delivery) {
	l.deleteDelivery(ctx, id)
	l.failures.Add(1)
	var head eventHead
	_ = json.Unmarshal(d.Event, &head)
	l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: event hook delivery abandoned",
		slog.String("hook", h.hook.Name), slog.String("event", d.EventID), slog.Int("attempts", d.Attempts),
		slog.String("error", d.LastError))
	l.record(ctx, Event{
		Type:     TypeDeliveryAbandon,
		Severity: SeverityWarn,
		Actor:    Actor{ID: "zonegate", Type: ActorSystem, Name: "zonegate"},
		Targets: []Target{
			{ID: h.hook.Name, Type: "event_hook", Name: h.hook.Name},
			{ID: d.EventID, Type: "event", Name: head.Type},
		},
		Outcome: OutcomeFailure,
		Reason:  d.LastError,
		Message: fmt.Sprintf("gave up delivering event %s to hook %q after %d attempts", d.EventID, h.hook.Name, d.Attempts),
		Details: map[string]string{"hook": h.hook.Name, "eventId": d.EventID, "eventType": head.Type, "attempts": strconv.Itoa(d.Attempts)},
	}, h.hook.Name)
}

// release gives a claimed delivery back at shutdown, so the next node need not wait for the
// lease to run out. The attempt is not counted.
func (l *Log) release(ctx context.Context, id string, lease time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := l.st.Update(ctx, KindDelivery, id, func(r store.Record) (store.Record, error) {
		var d delivery
		if err := json.Unmarshal(r.Value, &d); err != nil {
			return r, fmt.Errorf("decoding delivery %s: %w", id, err)
		}
		if !d.LeaseUntil.Equal(lease) {
			return r, errLostLease
		}
		d.LeaseUntil = time.Time{}
		b, err := json.Marshal(d)
		if err != nil {
			return r, err
		}
		r.Value = b
		return r, nil
	})
	if err != nil && !errors.Is(err, errLostLease) && !errors.Is(err, store.ErrNotFound) {
		l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: releasing a hook delivery at shutdown failed",
			slog.String("id", id), slog.String("error", err.Error()))
	}
}

// deleteDelivery removes a finished delivery, even while shutting down.
func (l *Log) deleteDelivery(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.st.Delete(ctx, KindDelivery, id); err != nil {
		// The lease keeps other nodes off it for a while; after that it may be sent again.
		l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: deleting a finished hook delivery failed",
			slog.String("id", id), slog.String("error", err.Error()))
	}
}

// backoff is the wait after the n-th failed attempt (n >= 1): 1 s doubling up to 10 min, times
// a jitter factor between 0.75 and 1.25 picked by r in [0, 1), and never over 10 min.
func backoff(n int, r float64) time.Duration {
	d := maxBackoff
	if n < 1 {
		n = 1
	}
	if n <= 10 { // 1 s << 10 is already past the cap
		d = min(firstBackoff<<(n-1), maxBackoff)
	}
	j := d*3/4 + time.Duration(r*float64(d/2))
	return min(j, maxBackoff)
}

// ensureVerified reports whether h's receiver passed the handshake for its current URL, running
// the handshake if the store does not say so already. An error means the store failed.
func (l *Log) ensureVerified(ctx context.Context, h *hookRuntime) (bool, error) {
	states := store.Collection[hookState]{Store: l.st, Kind: KindHookState}
	st, err := states.Get(ctx, h.hook.Name)
	switch {
	case err == nil && st.Verified && st.URLHash == h.urlHash:
		return true, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	if why := l.handshake(ctx, h); why != "" {
		if ctx.Err() == nil {
			l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: event hook verification failed; its deliveries wait",
				slog.String("hook", h.hook.Name), slog.String("url", h.logURL), slog.String("reason", why))
		}
		return false, nil
	}
	now := l.now()
	next := hookState{URLHash: h.urlHash, Verified: true, VerifiedAt: now}
	err = states.Create(ctx, h.hook.Name, "", time.Time{}, next)
	if errors.Is(err, store.ErrAlreadyExists) {
		_, err = states.Update(ctx, h.hook.Name, func(hookState) (hookState, time.Time, error) { return next, time.Time{}, nil })
	}
	if err != nil {
		return false, fmt.Errorf("saving the verification of hook %q: %w", h.hook.Name, err)
	}
	l.logger.LogAttrs(ctx, slog.LevelInfo, "audit: event hook verified",
		slog.String("hook", h.hook.Name), slog.String("url", h.logURL))
	return true, nil
}

// handshake sends the verification challenge and returns "" if the receiver echoed it, else
// what went wrong.
func (l *Log) handshake(ctx context.Context, h *hookRuntime) string {
	var raw [16]byte
	rand.Read(raw[:])
	challenge := hex.EncodeToString(raw[:])
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, h.hook.URL, nil)
	if err != nil {
		return "building the request failed"
	}
	ts := strconv.FormatInt(l.now().Unix(), 10)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	req.Header.Set(HeaderChallenge, challenge)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(h.secret, ts, []byte(challenge)))
	resp, err := l.client.Do(req)
	if err != nil {
		return requestError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "reading the answer failed"
	}
	if resp.StatusCode != http.StatusOK {
		return "answered HTTP " + strconv.Itoa(resp.StatusCode) + ", want 200"
	}
	var ans VerificationAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return `answer is not JSON {"verification": "..."}`
	}
	if !hmac.Equal([]byte(ans.Verification), []byte(challenge)) {
		return "answer does not echo the challenge"
	}
	return ""
}
