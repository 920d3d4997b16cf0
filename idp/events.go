package idp

import (
	"context"
	"net/http"

	"github.com/zonegate/zonegate/audit"
)

// EventSink receives system-log events (an *audit.Log satisfies it). Record must not block
// for long: it is called on the request path.
type EventSink interface {
	Record(ctx context.Context, e audit.Event)
}

// Event is what the IdP says happened, turned into an audit.Event by emit.
type Event struct {
	Type     string // e.g. "user.session.start"
	Outcome  string // audit.Outcome*
	Reason   string
	UserID   string
	Username string
	ClientID string
	Severity string
	Message  string
	Details  map[string]string
}

// emit records e with the request's client address when an EventSink is configured.
func (p *IdP) emit(ctx context.Context, r *http.Request, e Event) {
	if p.events == nil {
		return
	}
	ev := audit.Event{
		Type:     e.Type,
		Severity: e.Severity,
		Outcome:  e.Outcome,
		Reason:   e.Reason,
		Message:  e.Message,
		Details:  e.Details,
	}
	if e.UserID != "" || e.Username != "" {
		ev.Actor = audit.Actor{ID: e.UserID, Type: audit.ActorUser, Name: e.Username}
	}
	if e.ClientID != "" {
		ev.Targets = []audit.Target{{ID: e.ClientID, Type: "app", Name: e.ClientID}}
	}
	if r != nil {
		if a := p.clientIP(r); a.IsValid() {
			ev.ClientIP = a.String()
			if p.zones != nil {
				ev.Zones = p.zones.Names(p.zones.Lookup(a))
			}
		}
		ev.RequestID = r.Header.Get("X-Request-Id")
	}
	p.events.Record(ctx, ev)
}
