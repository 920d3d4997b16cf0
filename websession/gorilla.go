package websession

import (
	"errors"
	"net/http"

	"github.com/gorilla/sessions"
)

// valuesKey is the key under which a gorilla session's Values carry the *Session.
const valuesKey = "session"

// Gorilla returns the Manager as a gorilla sessions.Store, for code written against that API.
// Values["session"] holds the *Session; Save stores a new one (and sets the cookie) or, with
// MaxAge < 0, ends it.
func (m *Manager) Gorilla() sessions.Store { return gorillaStore{m} }

type gorillaStore struct{ m *Manager }

// Get returns the request's session through gorilla's per-request registry.
func (g gorillaStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(g, name)
}

// New loads the request's session; IsNew is true when there is none.
func (g gorillaStore) New(r *http.Request, name string) (*sessions.Session, error) {
	gs := sessions.NewSession(g, name)
	gs.Options = &sessions.Options{Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
	gs.IsNew = true
	s, err := g.m.Load(r)
	if errors.Is(err, ErrNoSession) {
		return gs, nil
	}
	if err != nil {
		return gs, err
	}
	gs.ID = s.ID
	gs.Values[valuesKey] = s
	gs.IsNew = false
	return gs, nil
}

// Save starts the session in Values["session"] when it is new, or ends it when MaxAge < 0.
func (g gorillaStore) Save(r *http.Request, w http.ResponseWriter, gs *sessions.Session) error {
	if gs.Options != nil && gs.Options.MaxAge < 0 {
		return g.m.End(w, r)
	}
	s, ok := gs.Values[valuesKey].(*Session)
	if !ok {
		return errors.New("websession: gorilla session has no *Session value")
	}
	if !gs.IsNew {
		return nil // stored sessions change only through the Manager
	}
	started, err := g.m.Start(w, r, *s)
	if err != nil {
		return err
	}
	gs.ID = started.ID
	gs.Values[valuesKey] = started
	gs.IsNew = false
	return nil
}
