package idp

import (
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/websession"
	"github.com/zonegate/zonegate/zones"
)

// Sign-on policies are decided for the whole application: the facts carry this method and
// path, whatever the application will be asked later.
const (
	signOnMethod = http.MethodGet
	signOnPath   = "/"
)

// peerAddr is the default Config.ClientIP: the address the request came from.
func peerAddr(r *http.Request) netip.Addr {
	ip, err := zones.ParseClientIP(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ip
}

// signOnAllowed decides a sign-in to a's client by the client's Policy, for the user of
// session s in the browser of request r. Only an allow allows: a deny, an "authenticate"
// (which cannot be answered once the user is known), an unknown client or an inactive user
// deny. Denials are logged at info with the deciding rule; the browser learns nothing more
// than error=access_denied.
func (p *IdP) signOnAllowed(r *http.Request, a *authRequest, s *websession.Session) bool {
	ctx := r.Context()
	c, ok := p.clients.get(a.ClientID)
	if !ok {
		p.log.InfoContext(ctx, "idp: sign-in refused: unknown client", slog.String("client_id", a.ClientID))
		return false
	}
	if c.Policy == nil {
		return true
	}
	u, err := p.storage.activeUser(s.Username, s.UserID)
	if err != nil {
		p.log.InfoContext(ctx, "idp: sign-in refused by the client's sign-on policy: user inactive",
			slog.String("client_id", c.ID), slog.String("user", s.Username))
		return false
	}
	ip := p.clientIP(r)
	m := p.zones.Lookup(ip)
	d := c.Policy.Evaluate(&policy.Facts{
		Zones:         m,
		Authenticated: true,
		User:          u.Username,
		Groups:        u.Groups,
		Method:        signOnMethod,
		Path:          signOnPath,
	})
	attrs := []any{
		slog.String("client_id", c.ID), slog.String("user", u.Username),
		slog.String("policy", c.Policy.Name()), slog.String("decision", d.String()),
		slog.String("reason", string(d.Reason)), slog.Int("rule", d.Rule+1), slog.String("rule_name", d.RuleName),
		slog.String("client_ip", addrString(ip)), slog.Any("zones", p.zones.Names(m)),
	}
	if d.Outcome != policy.OutcomeAllow {
		p.log.InfoContext(ctx, "idp: sign-in refused by the client's sign-on policy", attrs...)
		return false
	}
	p.log.DebugContext(ctx, "idp: sign-in allowed by the client's sign-on policy", attrs...)
	return true
}

func addrString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}
