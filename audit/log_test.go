package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
)

// sample records a fixed set of events over three hours (19:xx, 20:xx, 21:xx UTC) and returns
// the log and the clock (left at the last event's time).
func sample(t *testing.T) (*Log, *clock) {
	t.Helper()
	l, clk := newTestLog(t, Config{})
	ctx := context.Background()
	for _, e := range []Event{
		{Type: "user.session.start", Actor: Actor{ID: "u1", Type: "user", Name: "alice"}, Outcome: "success", Message: "a1"},
		{Type: "user.authentication.auth_via_mfa", Actor: Actor{ID: "u1", Name: "alice"}, Outcome: "FAILURE", Message: "a2"},
		{Type: "policy.evaluate_sign_on", Actor: Actor{ID: "u2", Name: "bob"}, Outcome: "DENY", Targets: []Target{{ID: "app1", Type: "app", Name: "wiki"}}, Message: "b1"},
	} {
		l.Record(ctx, e)
		clk.Advance(time.Minute)
	}
	clk.Advance(time.Hour)
	for _, e := range []Event{
		{Type: "user.session.end", Actor: Actor{ID: "u2", Name: "bob"}, Outcome: "SUCCESS", Message: "b2"},
		{Type: "application.access.deny", Actor: Actor{ID: "u1", Name: "alice"}, Outcome: "deny", Targets: []Target{{ID: "app2", Name: "crm"}, {ID: "app1", Name: "wiki"}}, Message: "a3"},
	} {
		l.Record(ctx, e)
		clk.Advance(time.Minute)
	}
	clk.Advance(time.Hour)
	for _, e := range []Event{
		{Type: "user.account.lock", Actor: Actor{ID: "system", Type: "system"}, Targets: []Target{{ID: "u1", Type: "user", Name: "alice"}}, Message: "s1"},
		{Type: "system.api_token.use", Actor: Actor{ID: "tok1", Type: "admin_token", Name: "ci"}, Outcome: "SUCCESS", Message: "t1"},
	} {
		l.Record(ctx, e)
		clk.Advance(time.Minute)
	}
	flush(t, l)
	return l, clk
}

// messages returns the Message of each event, to compare results compactly.
func messages(es []Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Message
	}
	return out
}

func TestQueryFilters(t *testing.T) {
	l, _ := sample(t)
	since := t0.Add(-time.Hour)
	for _, tt := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"everything, in time order", Filter{}, []string{"a1", "a2", "b1", "b2", "a3", "s1", "t1"}},
		{"exact type", Filter{Types: []string{"user.session.start"}}, []string{"a1"}},
		{"prefix type with star", Filter{Types: []string{"user.session.*"}}, []string{"a1", "b2"}},
		{"prefix type with dot", Filter{Types: []string{"user."}}, []string{"a1", "a2", "b2", "s1"}},
		{"types are OR'ed", Filter{Types: []string{"policy.evaluate_sign_on", "system.*"}}, []string{"b1", "t1"}},
		{"a type prefix without dot or star is exact", Filter{Types: []string{"user.session"}}, nil},
		{"actor by id", Filter{Actor: "u2"}, []string{"b1", "b2"}},
		{"actor by name", Filter{Actor: "alice"}, []string{"a1", "a2", "a3"}},
		{"actor is exact", Filter{Actor: "ali"}, nil},
		{"outcome ignores case", Filter{Outcome: "deny"}, []string{"b1", "a3"}},
		{"outcome of unset is UNKNOWN", Filter{Outcome: "UNKNOWN"}, []string{"s1"}},
		{"target by id", Filter{Target: "app1"}, []string{"b1", "a3"}},
		{"target by name, any target", Filter{Target: "crm"}, []string{"a3"}},
		{"target user", Filter{Target: "alice"}, []string{"s1"}},
		{"conditions are AND'ed", Filter{Actor: "alice", Types: []string{"user.*"}, Outcome: "failure"}, []string{"a2"}},
		{"since is inclusive", Filter{Since: t0.Add(time.Minute)}, []string{"a2", "b1", "b2", "a3", "s1", "t1"}},
		{"until is exclusive", Filter{Since: since, Until: t0.Add(2 * time.Minute)}, []string{"a1", "a2"}},
		{"one middle hour", Filter{Since: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour)}, []string{"b2", "a3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := l.Query(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := messages(p.Events); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if p.Next != "" {
				t.Errorf("next = %q on the only page", p.Next)
			}
		})
	}
}

func TestRecordFillsDefaults(t *testing.T) {
	l, clk := newTestLog(t, Config{})
	ctx := context.Background()
	details := map[string]string{"k": "v"}
	zones := []string{"office"}
	l.Record(ctx, Event{ID: "caller-set", Type: "user.session.start", Severity: "warn", Outcome: "bogus", Zones: zones, Details: details,
		Reason: strings.Repeat("é", maxFieldLen)})
	details["k"] = "changed" // Record kept its own copy
	zones[0] = "changed"
	at := t0.Add(-10 * time.Minute).In(time.FixedZone("CET", 3600))
	l.Record(ctx, Event{Type: "x", Time: at})
	flush(t, l)
	p, err := l.Query(ctx, Filter{})
	if err != nil || len(p.Events) != 2 {
		t.Fatalf("query: %+v, %v", p, err)
	}
	older, e := p.Events[0], p.Events[1]
	if !older.Time.Equal(at) || older.Time.Location() != time.UTC || older.Severity != SeverityInfo || older.Outcome != OutcomeUnknown {
		t.Errorf("event with a time: %+v", older)
	}
	if !strings.HasPrefix(older.ID, "20261122T190958.000000000Z-") {
		t.Errorf("id %q does not carry the event's UTC time", older.ID)
	}
	if e.ID == "caller-set" || !e.Time.Equal(clk.Now()) || e.Severity != SeverityWarn || e.Outcome != OutcomeUnknown {
		t.Errorf("defaults: %+v", e)
	}
	if tm, err := parseID(e.ID); err != nil || !tm.Equal(e.Time) {
		t.Errorf("id %q: %v, %v; want the event time", e.ID, tm, err)
	}
	if e.Details["k"] != "v" || e.Zones[0] != "office" {
		t.Errorf("the stored event shares the caller's map or slice: %v %v", e.Details, e.Zones)
	}
	if len(e.Reason) > maxFieldLen || !strings.HasPrefix(e.Reason, "é") || !utf8Valid(e.Reason) {
		t.Errorf("reason not cut at a rune boundary within %d bytes: %d bytes", maxFieldLen, len(e.Reason))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestSameTimeKeepsRecordOrder(t *testing.T) {
	l, _ := newTestLog(t, Config{})
	ctx := context.Background()
	var want []string
	for i := range 50 {
		m := string(rune('A' + i))
		want = append(want, m)
		l.Record(ctx, Event{Type: "t", Message: m}) // the clock does not move
	}
	flush(t, l)
	p, err := l.Query(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := messages(p.Events); !slices.Equal(got, want) {
		t.Errorf("got %v, want record order", got)
	}
}

func TestQueryPaging(t *testing.T) {
	l, _ := sample(t)
	ctx := context.Background()
	all := []string{"a1", "a2", "b1", "b2", "a3", "s1", "t1"}
	for _, limit := range []int{1, 2, 3, 6, 7, 8} {
		var got []string
		f := Filter{Limit: limit}
		pages := 0
		for {
			p, err := l.Query(ctx, f)
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			pages++
			if len(p.Events) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(p.Events))
			}
			got = append(got, messages(p.Events)...)
			if p.Next == "" {
				break
			}
			if p.Next != p.Events[len(p.Events)-1].ID {
				t.Fatalf("limit %d: next %q is not the last event's id", limit, p.Next)
			}
			f.After = p.Next
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
		if !slices.Equal(got, all) {
			t.Errorf("limit %d: got %v", limit, got)
		}
		if want := (len(all) + limit - 1) / limit; pages != want {
			t.Errorf("limit %d: %d pages, want %d (no empty last page)", limit, pages, want)
		}
	}
}

func TestCursorCannotEscapeRange(t *testing.T) {
	l, _ := sample(t)
	ctx := context.Background()
	p, err := l.Query(ctx, Filter{Limit: 1}) // cursor at a1, 19:19:58
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %+v, %v", p, err)
	}
	// A narrower range keeps its bounds with a cursor from before it...
	p2, err := l.Query(ctx, Filter{Since: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour), After: p.Next})
	if err != nil {
		t.Fatal(err)
	}
	if got := messages(p2.Events); !slices.Equal(got, []string{"b2", "a3"}) {
		t.Errorf("cursor before the range: got %v, want [b2 a3]", got)
	}
	// ...and with one from after it (nothing, not the events past Until).
	last := p2.Events[len(p2.Events)-1].ID
	p3, err := l.Query(ctx, Filter{Since: t0, Until: t0.Add(time.Hour), After: last})
	if err != nil || len(p3.Events) != 0 || p3.Next != "" {
		t.Errorf("cursor after the range: %+v, %v; want nothing", p3, err)
	}
	// A cursor does not bring back events its filter leaves out.
	p4, err := l.Query(ctx, Filter{Actor: "bob", After: p.Next})
	if err != nil || !slices.Equal(messages(p4.Events), []string{"b1", "b2"}) {
		t.Errorf("cursor with a filter: %v, %v", messages(p4.Events), err)
	}
}

func TestQueryRejects(t *testing.T) {
	l, _ := newTestLog(t, Config{Retention: 48 * time.Hour})
	for _, tt := range []struct {
		name string
		f    Filter
		want string
	}{
		{"since after until", Filter{Since: t0, Until: t0.Add(-time.Second)}, "since: must be before until"},
		{"since equals until", Filter{Since: t0, Until: t0}, "since: must be before until"},
		{"since after the default until", Filter{Since: t0.Add(time.Hour)}, "since: must be before until"},
		{"span over retention", Filter{Since: t0.Add(-49 * time.Hour)}, "longer than the retention of 48h0m0s"},
		{"limit over max", Filter{Limit: 1001}, "limit: must be 1 to 1000"},
		{"negative limit", Filter{Limit: -1}, "limit: must be 1 to 1000"},
		{"bad cursor", Filter{After: "20261122T191958Z-abc"}, "after: not a cursor from a previous page"},
		{"cursor with a bad suffix", Filter{After: "20261122T191958.123456789Z-1234567g"}, "after: not a cursor"},
		{"bad type", Filter{Types: []string{"user session"}}, `type: event type "user session": only letters`},
		{"star inside a type", Filter{Types: []string{"user.*.start"}}, "type: event type"},
		{"empty type", Filter{Types: []string{""}}, "type: empty event type"},
		{"huge actor", Filter{Actor: strings.Repeat("a", 2000)}, "actor: longer than 1024 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Query(context.Background(), tt.f)
			if !errors.Is(err, ErrInvalidFilter) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInvalidFilter with %q", err, tt.want)
			}
		})
	}
	if _, err := l.Query(context.Background(), Filter{Since: t0.Add(-48 * time.Hour)}); err != nil {
		t.Errorf("a span of exactly the retention: %v", err)
	}
}

func TestRetention(t *testing.T) {
	l, clk := newTestLog(t, Config{Retention: 3 * time.Hour})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "old", Message: "old"})
	clk.Advance(2 * time.Hour)
	l.Record(ctx, Event{Type: "new", Message: "new"})
	flush(t, l)
	p, err := l.Query(ctx, Filter{Since: t0.Add(-time.Minute)})
	if err != nil || !slices.Equal(messages(p.Events), []string{"old", "new"}) {
		t.Fatalf("before expiry: %v, %v", messages(p.Events), err)
	}
	oldID := p.Events[0].ID
	rec, err := l.st.Get(ctx, KindEvent, oldID)
	if err != nil || !rec.ExpiresAt.Equal(t0.Add(3*time.Hour)) || rec.Owner != "h:2026112219" {
		t.Fatalf("stored record: %+v, %v; want expiry at time + retention, owner the hour", rec, err)
	}
	clk.Advance(time.Hour) // the first event is now exactly 3 h old
	p, err = l.Query(ctx, Filter{Since: t0})
	if err != nil || !slices.Equal(messages(p.Events), []string{"new"}) {
		t.Errorf("after the first expired: %v, %v", messages(p.Events), err)
	}
	if _, err := l.st.Get(ctx, KindEvent, oldID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired record still readable: %v", err)
	}
}

func TestParseFilter(t *testing.T) {
	for _, tt := range []struct {
		name    string
		query   string
		want    Filter
		wantErr string
	}{
		{name: "empty", query: "", want: Filter{}},
		{name: "everything", query: "since=2026-11-22T10:00:00Z&until=2026-11-22T12:00:00.5%2B01:00&type=user.session.*&type=policy.,system.api_token.use&actor=alice&outcome=deny&target=wiki&limit=50&after=20261122T191958.123456789Z-0a1b2c3d",
			want: Filter{
				Since: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 22, 11, 0, 0, 5e8, time.UTC),
				Types: []string{"user.session.*", "policy.", "system.api_token.use"}, Actor: "alice", Outcome: "deny", Target: "wiki",
				Limit: 50, After: "20261122T191958.123456789Z-0a1b2c3d",
			}},
		{name: "comma list with spaces", query: "type=a.b,+c.*", want: Filter{Types: []string{"a.b", "c.*"}}},
		{name: "bad since", query: "since=yesterday", wantErr: "since: not an RFC 3339 time"},
		{name: "date only", query: "since=2026-11-22", wantErr: "since: not an RFC 3339 time"},
		{name: "no zone", query: "until=2026-11-22T10:00:00", wantErr: "until: not an RFC 3339 time"},
		{name: "since after until", query: "since=2026-11-22T12:00:00Z&until=2026-11-22T10:00:00Z", wantErr: "since: must be before until"},
		{name: "since twice", query: "since=2026-11-22T10:00:00Z&since=2026-11-22T11:00:00Z", wantErr: "since: given more than once"},
		{name: "actor twice", query: "actor=a&actor=b", wantErr: "actor: given more than once"},
		{name: "limit zero", query: "limit=0", wantErr: "limit: must be 1 to 1000"},
		{name: "limit big", query: "limit=1001", wantErr: "limit: must be 1 to 1000"},
		{name: "limit word", query: "limit=ten", wantErr: "limit: not a whole number"},
		{name: "limit max", query: "limit=1000", want: Filter{Limit: 1000}},
		{name: "empty type entry", query: "type=a,,b", wantErr: "type: empty event type"},
		{name: "bad type", query: "type=a%20b", wantErr: `type: event type "a b"`},
		{name: "too many types", query: "type=" + strings.Repeat("a,", 32) + "a", wantErr: "type: more than 32 entries"},
		{name: "bad cursor", query: "after=nope", wantErr: "after: not a cursor from a previous page"},
		{name: "unknown parameter", query: "sinse=2026-11-22T10:00:00Z", wantErr: `unknown parameter "sinse"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFilter(q)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidFilter) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v; want an error with %q", f, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !f.Since.Equal(tt.want.Since) || !f.Until.Equal(tt.want.Until) || !slices.Equal(f.Types, tt.want.Types) ||
				f.Actor != tt.want.Actor || f.Outcome != tt.want.Outcome || f.Target != tt.want.Target ||
				f.Limit != tt.want.Limit || f.After != tt.want.After {
				t.Errorf("got %+v, want %+v", f, tt.want)
			}
		})
	}
}

func TestBufferFullDrops(t *testing.T) {
	clk := newClock()
	st := openStore(t, filepath.Join(t.TempDir(), "a.db"), clk)
	l, err := New(Config{Store: st, Now: clk.Now, BufferSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Flush(ctx); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("flush before start: %v", err)
	}
	l.Record(ctx, Event{Type: "kept", Message: "kept"})
	start := time.Now()
	l.Record(ctx, Event{Type: "lost", Message: "lost"}) // the writer is not running: the buffer stays full
	if waited := time.Since(start); waited < fullBufferWait {
		t.Errorf("dropped after %s, want a wait of %s first", waited, fullBufferWait)
	}
	if n := l.Dropped(); n != 1 {
		t.Fatalf("dropped = %d, want 1", n)
	}
	l.Start()
	flush(t, l)
	p, err := l.Query(ctx, Filter{})
	if err != nil || !slices.Equal(messages(p.Events), []string{"kept"}) {
		t.Errorf("stored %v, %v; want only the event that fit", messages(p.Events), err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l.Record(ctx, Event{Type: "late"})
	if n := l.Dropped(); n != 2 {
		t.Errorf("dropped = %d after recording on a closed log, want 2", n)
	}
	if err := l.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("flush after close: %v, want ErrClosed", err)
	}
}

func TestCloseStoresBufferedEvents(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "a.db")
	st := openStore(t, path, clk)
	for _, start := range []bool{true, false} {
		l, err := New(Config{Store: st, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		if start {
			l.Start()
		}
		for range 100 {
			l.Record(context.Background(), Event{Type: "t"})
		}
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		l.Start() // does nothing after Close
		if err := l.Close(context.Background()); err != nil {
			t.Fatalf("second close: %v", err)
		}
	}
	rs, err := st.ListByOwner(context.Background(), KindEvent, bucket(t0))
	if err != nil || len(rs) != 200 {
		t.Errorf("stored %d events, %v; want all 200", len(rs), err)
	}
}

func TestEventsAreLogged(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, _ := newTestLog(t, Config{Logger: logger})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "user.session.start", Actor: Actor{ID: "u1", Name: "alice"}, ClientIP: "192.0.2.1", Zones: []string{"office"},
		Targets: []Target{{ID: "app1", Name: "wiki"}}, Outcome: "SUCCESS", Details: map[string]string{"method": "webauthn"}})
	l.Record(ctx, Event{Type: "user.account.lock", Severity: "WARN"})
	l.Record(ctx, Event{Type: "system.store.error", Severity: "ERROR"})
	flush(t, l)
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "audit event" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d event lines, want 3:\n%s", len(lines), buf.String())
	}
	first := lines[0]
	actor, _ := first["actor"].(map[string]any)
	details, _ := first["details"].(map[string]any)
	if first["level"] != "INFO" || first["type"] != "user.session.start" || first["client_ip"] != "192.0.2.1" ||
		actor["name"] != "alice" || details["method"] != "webauthn" || first["outcome"] != "SUCCESS" || first["id"] == "" {
		t.Errorf("first line: %v", first)
	}
	if lines[1]["level"] != "WARN" || lines[2]["level"] != "ERROR" {
		t.Errorf("levels: %v, %v; want WARN, ERROR", lines[1]["level"], lines[2]["level"])
	}
}

func TestNewRejects(t *testing.T) {
	clk := newClock()
	st := openStore(t, filepath.Join(t.TempDir(), "a.db"), clk)
	good := Hook{Name: "siem", URL: "https://siem.example.com/in", Secret: secret, Types: []string{"*"}}
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no store", Config{}, "audit: no store"},
		{"negative retention", Config{Store: st, Retention: -time.Hour}, "negative retention"},
		{"short retention", Config{Store: st, Retention: time.Minute}, "shorter than an hour"},
		{"negative buffer", Config{Store: st, BufferSize: -1}, "negative buffer size"},
		{"bad hook", Config{Store: st, Hooks: []Hook{good, {Name: "x"}}}, "audit: hook 2: event hook \"x\": no URL"},
		{"duplicate hook", Config{Store: st, Hooks: []Hook{good, good}}, `hook 2: event hook "siem": name used twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{Store: st, Hooks: []Hook{good}}); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestIDFormat(t *testing.T) {
	at := time.Date(2026, 11, 22, 19, 19, 58, 123456789, time.UTC)
	id := newID(at, 0x0a1b2c3d)
	if id != "20261122T191958.123456789Z-0a1b2c3d" {
		t.Errorf("id = %q", id)
	}
	if got, err := parseID(id); err != nil || !got.Equal(at) {
		t.Errorf("parseID = %v, %v", got, err)
	}
	if a, b := newID(at, 0xffffffff), newID(at.Add(time.Nanosecond), 0); a >= b {
		t.Errorf("ids do not sort by time: %q >= %q", a, b)
	}
	for _, bad := range []string{"", "x", id[:len(id)-1], strings.Replace(id, "-", "_", 1), strings.Replace(id, "T", "t", 1), id + "0"} {
		if _, err := parseID(bad); err == nil {
			t.Errorf("parseID(%q) accepted", bad)
		}
	}
}
