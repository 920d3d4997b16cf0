package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// serviceRequest is a client_credentials grant: the client is the subject.
type serviceRequest struct {
	clientID string
	scopes   []string
}

var _ op.TokenRequest = (*serviceRequest)(nil)

func (r *serviceRequest) GetSubject() string    { return r.clientID }
func (r *serviceRequest) GetAudience() []string { return []string{r.clientID} }
func (r *serviceRequest) GetScopes() []string   { return slices.Clone(r.scopes) }

var _ op.ClientCredentialsStorage = (*opStorage)(nil)

// ClientCredentials returns the client of a client_credentials grant, which the
// interceptor authenticated by its registered method (authenticateClient); op then checks
// that the client has the grant.
func (s *opStorage) ClientCredentials(ctx context.Context, clientID, _ string) (op.Client, error) {
	if clientID == "" || authenticatedClient(ctx) != clientID {
		return nil, errors.New("client not authenticated")
	}
	c, ok := s.p.clients.get(clientID)
	if !ok {
		return nil, errors.New("unknown client")
	}
	return s.opClient(c), nil
}

// ClientCredentialsTokenRequest narrows the requested scopes to the client's Scopes
// (dropping the rest; all of them when none are asked for).
func (s *opStorage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, ok := s.p.clients.get(clientID)
	if !ok || !c.hasGrant(GrantClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient()
	}
	return &serviceRequest{clientID: clientID, scopes: c.grantServiceScopes(scopes)}, nil
}

// createServiceToken stores a client_credentials access token.
func (s *opStorage) createServiceToken(ctx context.Context, r *serviceRequest) (string, time.Time, error) {
	c, ok := s.p.clients.get(r.clientID)
	if !ok || !c.hasGrant(GrantClientCredentials) {
		return "", time.Time{}, oidc.ErrUnauthorizedClient()
	}
	t := accessToken{
		ID:        newID(),
		ClientID:  c.ID,
		Subject:   c.ID,
		Scopes:    slices.Clone(r.scopes),
		ExpiresAt: s.p.now().Add(c.accessTokenLifetime(s.p.accessTokenLifetime)),
		Service:   true,
	}
	// No owner: a service token belongs to no user, so no user's revocation touches it.
	if err := s.tokens().Create(ctx, t.ID, "", t.ExpiresAt, t); err != nil {
		return "", time.Time{}, fmt.Errorf("saving the access token: %w", err)
	}
	s.p.log.InfoContext(ctx, "idp: service token issued", slog.String("client_id", c.ID), slog.Any("scopes", t.Scopes))
	return t.ID, t.ExpiresAt, nil
}

// algHint carries, through one token request, the signing algorithm of the client op
// loaded, from GetClientByClientID to SigningKey (op's SigningKey has no client argument).
type algHint struct{ alg jose.SignatureAlgorithm }

type algHintKey struct{}

// withAlgHint prepares ctx of a token endpoint request for noteSigningAlg.
func withAlgHint(ctx context.Context) context.Context {
	return context.WithValue(ctx, algHintKey{}, &algHint{})
}

func noteSigningAlg(ctx context.Context, alg jose.SignatureAlgorithm) {
	if h, ok := ctx.Value(algHintKey{}).(*algHint); ok {
		h.alg = alg
	}
}

// signingAlgFromContext is the noted algorithm, ES256 when none.
func signingAlgFromContext(ctx context.Context) jose.SignatureAlgorithm {
	if h, ok := ctx.Value(algHintKey{}).(*algHint); ok && h.alg != "" {
		return h.alg
	}
	return jose.ES256
}
