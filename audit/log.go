package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonegate/zonegate/store"
)

// Store kinds the package uses.
const (
	// KindEvent holds events: id the event id, owner the hour bucket "h:2006010215".
	KindEvent store.Kind = "audit_event"
	// KindDelivery holds queued hook deliveries: owner "hook:<name>".
	KindDelivery store.Kind = "audit_delivery"
	// KindHookState holds each hook's verification state: id the hook name.
	KindHookState store.Kind = "audit_hookstate"
)

// Defaults.
const (
	// DefaultRetention is how long events (and undelivered deliveries) are kept.
	DefaultRetention = 90 * 24 * time.Hour
	// DefaultBufferSize is the number of events Record can queue ahead of the writer.
	DefaultBufferSize = 4096
	// DefaultHookTimeout is the default HTTP client's timeout for hook requests.
	DefaultHookTimeout = 10 * time.Second
	// fullBufferWait is how long Record waits for room in a full buffer before dropping.
	fullBufferWait = 50 * time.Millisecond
	// storeOpTimeout bounds one store operation of the background goroutines.
	storeOpTimeout = 10 * time.Second
)

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("audit: log closed")

// Config configures a Log.
type Config struct {
	// Store keeps events, deliveries and hook state. Required.
	Store store.Store
	// Retention is how long events are kept (records expire after it); default 90 days. Query
	// refuses ranges longer than this.
	Retention time.Duration
	// Logger receives every recorded event (at the level its Severity names) and the package's
	// own messages. Default: discards.
	Logger *slog.Logger
	// Hooks are the event hooks; names must be unique.
	Hooks []Hook
	// Now is the clock; default time.Now.
	Now func() time.Time
	// HTTPClient sends hook requests. Default: 10 s timeout, redirects not followed.
	HTTPClient *http.Client
	// BufferSize is how many events can wait for the writer; default 4096.
	BufferSize int
}

// Log is the system log: Record stores events in the background and queues their hook
// deliveries; Query reads them back. Create it with New, then Start it; Close it on shutdown.
// It is safe for concurrent use.
type Log struct {
	st        store.Store
	retention time.Duration
	logger    *slog.Logger
	now       func() time.Time
	client    *http.Client
	hooks     []*hookRuntime

	ch   chan item
	seq  atomic.Uint32
	wake chan struct{} // tells the dispatcher there are new deliveries

	dropped    atomic.Uint64
	failures   atomic.Uint64 // abandoned deliveries
	writeFails atomic.Uint64 // events the writer could not store

	// mu guards closed and orders Close after every send on ch (senders hold it for reading).
	mu     sync.RWMutex
	closed bool

	startOnce    sync.Once
	started      atomic.Bool
	closeOnce    sync.Once
	closeDone    chan struct{} // closed when Close's shutdown has finished
	stopWriter   chan struct{}
	writerDone   chan struct{}
	stopDispatch context.CancelFunc
	dispatchDone chan struct{}

	// pollEvery is how often the dispatcher looks for due deliveries; a variable for tests.
	pollEvery time.Duration
	// scanCap bounds how long the dispatcher trusts its idea of a hook's next due delivery.
	scanCap time.Duration
}

// item is what goes through the buffer: an event, or a flush marker.
type item struct {
	event    Event
	skipHook string        // a hook that must not get this event (the one an abandon is about)
	flush    chan<- uint64 // a Flush waiting: receives writeFails once everything before it is done
}

// New checks cfg, fills its defaults and returns a Log that is not started yet.
func New(cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: no store")
	}
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("audit: negative retention %s", cfg.Retention)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < time.Hour {
		return nil, fmt.Errorf("audit: retention %s is shorter than an hour", cfg.Retention)
	}
	if cfg.BufferSize < 0 {
		return nil, fmt.Errorf("audit: negative buffer size %d", cfg.BufferSize)
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout:       DefaultHookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	l := &Log{
		st:         cfg.Store,
		retention:  cfg.Retention,
		logger:     cfg.Logger,
		now:        cfg.Now,
		client:     cfg.HTTPClient,
		ch:         make(chan item, cfg.BufferSize),
		wake:       make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
		closeDone:  make(chan struct{}),
		pollEvery:  time.Second,
		scanCap:    10 * time.Second,
	}
	seen := make(map[string]bool, len(cfg.Hooks))
	for i, h := range cfg.Hooks {
		if err := h.Validate(); err != nil {
			return nil, fmt.Errorf("audit: hook %d: %w", i+1, err)
		}
		if seen[h.Name] {
			return nil, fmt.Errorf("audit: hook %d: event hook %q: name used twice", i+1, h.Name)
		}
		seen[h.Name] = true
		h.Types = append([]string(nil), h.Types...)
		l.hooks = append(l.hooks, newHookRuntime(h))
	}
	l.seq.Store(randomUint32())
	return l, nil
}

// Start starts the background writer and the hook dispatcher. Calling it again, or after
// Close, does nothing.
func (l *Log) Start() {
	l.startOnce.Do(func() {
		l.mu.RLock()
		closed := l.closed
		l.mu.RUnlock()
		if closed {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		l.stopDispatch = cancel
		l.dispatchDone = make(chan struct{})
		l.started.Store(true)
		go l.writeLoop()
		go l.dispatchLoop(ctx)
	})
}

// Close stops the dispatcher (an in-flight delivery is cancelled and released for a retry),
// then stores every buffered event and stops the writer. Events recorded after Close are dropped.
// If ctx ends first Close returns its error and the shutdown goes on in the background; calling
// Close again waits for it.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.startOnce.Do(func() {}) // Start does nothing from now on
		go l.shutdown()
	})
	select {
	case <-l.closeDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing the audit log: %w", ctx.Err())
	}
}

// shutdown stops the dispatcher first (it may record abandon events), then the writer.
func (l *Log) shutdown() {
	defer close(l.closeDone)
	if l.started.Load() {
		l.stopDispatch()
		<-l.dispatchDone
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	if !l.started.Load() {
		l.drain() // no writer runs: store what is buffered here
		return
	}
	close(l.stopWriter)
	<-l.writerDone
}

// Record adds e to the log: it sets e.ID, e.Time (if zero) and the defaults, logs it, and queues
// it for the writer, which stores it and a delivery for every hook whose Types match. Record
// never waits long: if the buffer is full it waits at most 50 ms, then drops e and counts it
// (Dropped). ctx is used for logging only; a cancelled request's event is still recorded.
// Record keeps its own copy of e's slices and map.
func (l *Log) Record(ctx context.Context, e Event) {
	l.record(ctx, e, "")
}

func (l *Log) record(ctx context.Context, e Event, skipHook string) {
	normalize(&e, l.now())
	e.ID = newID(e.Time, l.seq.Add(1))
	l.logEvent(ctx, &e)

	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.drop(ctx, &e, "the log is closed")
		return
	}
	it := item{event: e, skipHook: skipHook}
	select {
	case l.ch <- it:
		return
	default:
	}
	t := time.NewTimer(fullBufferWait)
	defer t.Stop()
	select {
	case l.ch <- it:
	case <-t.C:
		l.drop(ctx, &e, "the buffer is full")
	}
}

// drop counts a lost event and warns now and then (not for each one, which would flood the log
// exactly when the system is overloaded).
func (l *Log) drop(ctx context.Context, e *Event, why string) {
	n := l.dropped.Add(1)
	if n == 1 || n%1000 == 0 {
		l.logger.LogAttrs(ctx, slog.LevelWarn, "audit: event dropped", slog.String("reason", why),
			slog.String("id", e.ID), slog.String("type", e.Type), slog.Uint64("dropped_total", n))
	}
}

// Dropped returns how many events Record dropped (buffer full or log closed).
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// DeliveryFailures returns how many hook deliveries this Log abandoned after MaxAttempts.
func (l *Log) DeliveryFailures() uint64 { return l.failures.Load() }

// Flush waits until every event Record'ed before it was called has been written to the store
// (with its deliveries). It returns an error if some of them could not be stored, if ctx ends
// first, if the Log was not started, or after Close.
func (l *Log) Flush(ctx context.Context) error {
	if !l.started.Load() {
		return errors.New("audit: flushing: the log is not started")
	}
	before := l.writeFails.Load()
	done := make(chan uint64, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.ch <- item{flush: done}:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return fmt.Errorf("audit: flushing: %w", ctx.Err())
	}
	select {
	case after := <-done:
		if n := after - before; n > 0 {
			return fmt.Errorf("audit: flushing: %d events could not be stored (see the log)", n)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: flushing: %w", ctx.Err())
	}
}

// logEvent writes e to the slog logger at its severity's level.
func (l *Log) logEvent(ctx context.Context, e *Event) {
	level := slog.LevelInfo
	switch e.Severity {
	case SeverityWarn:
		level = slog.LevelWarn
	case SeverityError:
		level = slog.LevelError
	}
	if !l.logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("id", e.ID),
		slog.Time("time", e.Time),
		slog.String("type", e.Type),
		slog.String("severity", e.Severity),
		slog.String("outcome", e.Outcome),
		slog.Group("actor", slog.String("id", e.Actor.ID), slog.String("type", e.Actor.Type), slog.String("name", e.Actor.Name)),
	)
	if len(e.Targets) > 0 {
		ts := make([]any, len(e.Targets))
		for i, t := range e.Targets {
			ts[i] = slog.GroupValue(slog.String("id", t.ID), slog.String("type", t.Type), slog.String("name", t.Name))
		}
		attrs = append(attrs, slog.Any("targets", ts))
	}
	for _, a := range []struct{ k, v string }{
		{"reason", e.Reason}, {"client_ip", e.ClientIP}, {"device", e.Device},
		{"request_id", e.RequestID}, {"message", e.Message},
	} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.k, a.v))
		}
	}
	if len(e.Zones) > 0 {
		attrs = append(attrs, slog.Any("zones", e.Zones))
	}
	if len(e.Details) > 0 {
		ds := make([]slog.Attr, 0, len(e.Details))
		for k, v := range e.Details {
			ds = append(ds, slog.String(k, v))
		}
		attrs = append(attrs, slog.Attr{Key: "details", Value: slog.GroupValue(ds...)})
	}
	l.logger.LogAttrs(ctx, level, "audit event", attrs...)
}

// writeLoop stores what Record queues until Close, then stores what is left and returns.
func (l *Log) writeLoop() {
	defer close(l.writerDone)
	for {
		select {
		case it := <-l.ch:
			l.handle(it)
		case <-l.stopWriter:
			l.drain()
			return
		}
	}
}

// drain handles everything in the buffer.
func (l *Log) drain() {
	for {
		select {
		case it := <-l.ch:
			l.handle(it)
		default:
			return
		}
	}
}

func (l *Log) handle(it item) {
	if it.flush != nil {
		it.flush <- l.writeFails.Load()
		return
	}
	if err := l.write(it.event, it.skipHook); err != nil {
		l.writeFails.Add(1)
		l.logger.LogAttrs(context.Background(), slog.LevelError, "audit: storing an event failed",
			slog.String("id", it.event.ID), slog.String("type", it.event.Type), slog.String("error", err.Error()))
	}
}

// write stores e and a delivery for each hook that takes it.
func (l *Log) write(e Event, skipHook string) error {
	var errs []error
	for try := 0; ; try++ {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", e.ID, err)
		}
		err = l.withRetry(func(ctx context.Context) error {
			return l.st.Create(ctx, store.Record{Kind: KindEvent, ID: e.ID, Owner: bucket(e.Time), Value: b, ExpiresAt: e.Time.Add(l.retention)})
		})
		if errors.Is(err, store.ErrAlreadyExists) && try < 3 {
			// Another node made the same id in the same nanosecond: take a random suffix.
			e.ID = newID(e.Time, randomUint32())
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("storing event %s: %w", e.ID, err))
		}
		queued := false
		for _, h := range l.hooks {
			if h.hook.Name == skipHook || !h.hook.Matches(e.Type) {
				continue
			}
			if err := l.enqueue(h, e.ID, b); err != nil {
				errs = append(errs, fmt.Errorf("queueing event %s for hook %q: %w", e.ID, h.hook.Name, err))
				continue
			}
			queued = true
		}
		if queued {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
		return errors.Join(errs...)
	}
}

// withRetry runs a store operation, retrying twice after a short pause if it fails for a reason
// other than the answer itself.
func (l *Log) withRetry(op func(ctx context.Context) error) error {
	var err error
	for i, pause := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond} {
		if i > 0 {
			time.Sleep(pause)
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeOpTimeout)
		err = op(ctx)
		cancel()
		if err == nil || errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return err
}
