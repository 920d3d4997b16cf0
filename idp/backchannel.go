package idp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/websession"
)

// OpenID Connect Back-Channel Logout 1.0: when a sign-in session ends, each client with a
// BackChannelLogoutURI that received tokens under it is POSTed a logout token. Which clients
// those are is recorded per session (kindSessionClients) when tokens are issued, and taken
// when the session ends. Delivery runs off the request path: a bounded queue served by a
// few goroutines that exist only while there is work.

// kindSessionClients lists, per sign-in session (id = sid, owner = subject), the clients with
// a back-channel logout URI that received tokens under it. It expires with the session.
const kindSessionClients store.Kind = "sessionclients"

const (
	// logoutTokenLifetime is how long a logout token is valid.
	logoutTokenLifetime = 2 * time.Minute
	// logoutTokenType is the logout token's typ header (the spec's explicit typing).
	logoutTokenType = "logout+jwt"
	// backchannelEvent is the logout token's one event.
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

	// backchannelQueueSize bounds the deliveries waiting; more are dropped (and logged).
	backchannelQueueSize = 1024
	// backchannelWorkers is how many deliveries run at once.
	backchannelWorkers = 4
	// backchannelTimeout bounds one delivery attempt.
	backchannelTimeout = 5 * time.Second
	// backchannelRetries is how many times a failed delivery is tried again.
	backchannelRetries = 2
	// backchannelBackoff is the wait before the first retry; it doubles for each next one.
	backchannelBackoff = time.Second
	// sessionClientsFallbackTTL keeps the record of a session whose expiry is unknown (an
	// auth request completed by an older version).
	sessionClientsFallbackTTL = 24 * time.Hour
)

// sessionClients is the kindSessionClients record.
type sessionClients struct {
	Subject string          `json:"sub"`
	Entries []sessionClient `json:"clients"`
}

// sessionClient is a client that received tokens under the session SID: the record's own
// session, or one the same user's sign-in replaced (carried over, see
// carrySessionClients), whose sid the client still knows.
type sessionClient struct {
	ClientID string `json:"client_id"`
	SID      string `json:"sid"`
}

func (p *IdP) sessionClients() store.Collection[sessionClients] {
	return store.Collection[sessionClients]{Store: p.store, Kind: kindSessionClients}
}

// errClientNoted aborts an Update that has nothing to add.
var errClientNoted = errors.New("client already recorded")

// noteSessionClient records that client c receives tokens under the session of a, when c
// has a back-channel logout URI. The token request fails when this cannot be recorded:
// the client would otherwise miss the logout.
func (p *IdP) noteSessionClient(ctx context.Context, c *Client, a *authRequest) error {
	if c.BackChannelLogoutURI == "" || a.SessionID == "" {
		return nil
	}
	exp := a.SessionExpiresAt
	if exp.IsZero() {
		exp = p.now().Add(sessionClientsFallbackTTL)
	}
	if err := p.addSessionClients(ctx, a.SessionID, a.UserID, exp, []sessionClient{{ClientID: c.ID, SID: a.SessionID}}); err != nil {
		return fmt.Errorf("recording the session's back-channel logout clients: %w", err)
	}
	return nil
}

// addSessionClients adds entries (those it lacks) to the record of session sid, creating it
// to expire at exp.
func (p *IdP) addSessionClients(ctx context.Context, sid, subject string, exp time.Time, entries []sessionClient) error {
	col := p.sessionClients()
	for range 3 {
		_, err := col.Update(ctx, sid, func(old sessionClients) (sessionClients, time.Time, error) {
			n := len(old.Entries)
			for _, e := range entries {
				if !slices.Contains(old.Entries, e) {
					old.Entries = append(old.Entries, e)
				}
			}
			if len(old.Entries) == n {
				return old, time.Time{}, errClientNoted
			}
			return old, time.Time{}, nil
		})
		if err == nil || errors.Is(err, errClientNoted) {
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		err = col.Create(ctx, sid, subject, exp, sessionClients{Subject: subject, Entries: slices.Clone(entries)})
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			return err
		}
	}
	return errors.New("too much contention")
}

// carrySessionClients moves the back-channel logout list of session oldSID, which the same
// user's new sign-in replaced without ending its tokens, to the new session: when that one
// ends, the clients hear of both sids.
func (p *IdP) carrySessionClients(ctx context.Context, oldSID string, s *websession.Session) error {
	rec, err := p.sessionClients().Take(ctx, oldSID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("carrying the back-channel logout clients over: %w", err)
	}
	if err := p.addSessionClients(ctx, s.ID, s.UserID, s.ExpiresAt, rec.Entries); err != nil {
		return fmt.Errorf("carrying the back-channel logout clients over: %w", err)
	}
	return nil
}

// backchannelLogout takes the list of clients that received tokens under session sid and
// queues a logout token for each that still has a back-channel logout URI.
func (p *IdP) backchannelLogout(ctx context.Context, sid string) error {
	rec, err := p.sessionClients().Take(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("taking the session's back-channel logout clients: %w", err)
	}
	for _, e := range rec.Entries {
		c, ok := p.clients.get(e.ClientID)
		if !ok || c.BackChannelLogoutURI == "" {
			continue
		}
		p.backchannel.enqueue(ctx, logoutJob{
			clientID: c.ID,
			uri:      c.BackChannelLogoutURI,
			alg:      c.signingAlgorithm(),
			subject:  rec.Subject,
			sid:      e.SID,
		})
	}
	return nil
}

// logoutJob is one logout token to deliver.
type logoutJob struct {
	clientID string
	uri      string
	alg      jose.SignatureAlgorithm
	subject  string
	sid      string
}

// backchannel delivers logout tokens in the background.
type backchannel struct {
	p       *IdP
	client  *http.Client
	backoff time.Duration // before the first retry; doubles

	mu      sync.Mutex
	queue   []logoutJob
	workers int
	running sync.WaitGroup // workers; tests wait on it
}

func newBackchannel(p *IdP) *backchannel {
	return &backchannel{
		p:       p,
		backoff: backchannelBackoff,
		client: &http.Client{
			Timeout: backchannelTimeout,
			// A redirect is not an answer: the spec wants 200 from the URI itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// enqueue queues j and makes sure a worker runs. A full queue drops j.
func (b *backchannel) enqueue(ctx context.Context, j logoutJob) {
	b.mu.Lock()
	if len(b.queue) >= backchannelQueueSize {
		b.mu.Unlock()
		b.p.log.WarnContext(ctx, "idp: back-channel logout queue full; logout not sent",
			slog.String("client_id", j.clientID), slog.String("sid", j.sid))
		return
	}
	b.queue = append(b.queue, j)
	start := b.workers < backchannelWorkers
	if start {
		b.workers++
		b.running.Add(1)
	}
	b.mu.Unlock()
	if start {
		go b.work()
	}
}

// work delivers queued jobs until none is left.
func (b *backchannel) work() {
	defer b.running.Done()
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.queue = nil
			b.workers--
			b.mu.Unlock()
			return
		}
		j := b.queue[0]
		b.queue[0] = logoutJob{}
		b.queue = b.queue[1:]
		b.mu.Unlock()
		b.deliver(j)
	}
}

// deliver signs a logout token for j and POSTs it, retrying failures that may pass. The
// token never reaches the log.
func (b *backchannel) deliver(j logoutJob) {
	ctx := context.Background()
	log := b.p.log.With(slog.String("client_id", j.clientID), slog.String("sid", j.sid), slog.String("uri", redactQuery(j.uri)))
	token, err := b.p.logoutToken(ctx, j)
	if err != nil {
		log.ErrorContext(ctx, "idp: back-channel logout not sent: signing the logout token", slog.Any("error", err))
		return
	}
	attempts := 1 + backchannelRetries
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			time.Sleep(b.backoff << (attempt - 2))
		}
		retry, err := b.post(ctx, j.uri, token)
		if err == nil {
			log.InfoContext(ctx, "idp: back-channel logout delivered", slog.Int("attempt", attempt))
			return
		}
		log.WarnContext(ctx, "idp: back-channel logout attempt failed", slog.Int("attempt", attempt), slog.Any("error", err))
		if !retry {
			break
		}
	}
	log.WarnContext(ctx, "idp: back-channel logout not delivered")
}

// post sends one logout token. retry says whether a failure may pass on another try (no
// answer, a server error, 408 or 429).
func (b *backchannel) post(ctx context.Context, uri, token string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, backchannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		// The error names the URL (without its query, which may hold a secret of the
		// client's), never the body.
		var ue *url.Error
		if errors.As(err, &ue) {
			return true, fmt.Errorf("%s %s: %w", ue.Op, redactQuery(ue.URL), ue.Err)
		}
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	}
	return false, fmt.Errorf("status %d", resp.StatusCode)
}

// logoutClaims are a logout token's claims beyond the registered ones.
type logoutClaims struct {
	SessionID string              `json:"sid"`
	Events    map[string]struct{} `json:"events"`
}

// logoutToken signs the logout token of j with the current key of the client's algorithm:
// iss, aud (the client), iat, exp, jti, sub, sid and the back-channel logout event; no
// nonce.
func (p *IdP) logoutToken(ctx context.Context, j logoutJob) (string, error) {
	k, err := p.currentSigner(ctx, j.alg)
	if err != nil {
		return "", err
	}
	sig, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.private, KeyID: k.kid, Algorithm: string(k.alg)}},
		(&jose.SignerOptions{}).WithType(logoutTokenType))
	if err != nil {
		return "", fmt.Errorf("creating the signer: %w", err)
	}
	now := p.now()
	return jwt.Signed(sig).
		Claims(jwt.Claims{
			Issuer:   p.issuer,
			Subject:  j.subject,
			Audience: jwt.Audience{j.clientID},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(logoutTokenLifetime)),
			ID:       newID(),
		}).
		Claims(logoutClaims{SessionID: j.sid, Events: map[string]struct{}{backchannelEvent: {}}}).
		Serialize()
}

// redactQuery is a URL for the log: without its query and fragment.
func redactQuery(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}
